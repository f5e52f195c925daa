#!/bin/bash
# The committed SO3LR-labelled frames with extended chains and minima that students v17-v19 add to a fine-tune:
# the v1 distillation frames (1030: MD at 300-600 K from the helix and the extended chain), v6's relaxation-path
# frames (288), v7's study frames (520) and v3's stretched bonds (480): 2318 frames.
#   bash bench/extended_sets.sh OUT.extxyz                       # all 2318
#   WITHOUT_HELIX_MD=1 bash bench/extended_sets.sh OUT.extxyz    # less the 473 v1 frames of MD from the alpha-helix
# Writes OUT only if it is missing or empty.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash bench/extended_sets.sh OUT.extxyz}
r=docs/results
[ -s "$OUT" ] && exit 0
mkdir -p "$(dirname "$OUT")"
if [ "${WITHOUT_HELIX_MD:-0}" = 1 ]; then
  xzcat $r/so3lr_student_v1/data/train.extxyz.xz | .venv/bin/python -c "
import sys
lines = sys.stdin.read().splitlines(keepends=True)
i = 0
while i < len(lines):
    n = int(lines[i])
    if 'source=Ac-Ala15-NHMe_folded.xyz' not in lines[i + 1]:
        sys.stdout.writelines(lines[i:i + n + 2])
    i += n + 2
" > "$OUT.partial"
else
  xzcat $r/so3lr_student_v1/data/train.extxyz.xz > "$OUT.partial"
fi
xzcat $r/so3lr_student_v6/minimum_labels.extxyz.xz $r/so3lr_student_v7/v7_new_labels.extxyz.xz \
    $r/so3lr_student_v3/data/bond_stretch_variants.extxyz.xz >> "$OUT.partial"
mv "$OUT.partial" "$OUT"
