#!/bin/bash
# Every check a new SO3LR student gets before it can be bundled (issue #11), in one command:
#
#   bash bench/evaluate_student.sh MODEL OUT_DIR        # ~15 min on 2 quiet cores
#
# 1. `so3k test` (float64, gas phase, all pairs) on the four held-out Ac-Ala15-NHMe sets, each labelled by
#    SO3LR: 120 distillation test frames (MD at 300-600 K from the helix and the extended chain), 128 frames
#    of the v4 folding study, 64 of the v6 study, 201 late frames of the v6 REMD run (extended to helical).
#    OUT_DIR/test_<set>.json and a parity plot each.
# 2. bench/bench_student.py: accuracy by start and temperature, relaxed helix - extended against SO3LR
#    (-1.558 eV, not relaxed again), speed on 8 x 162 atoms against SO3LR (interleaved), bond-stretch walls,
#    H-bonded N-H scans on study frames, and the energy error along the end-to-end distance (landscape).
#    OUT_DIR/bench.json, OUT_DIR/bench.txt and plots.
# Run it with the cores otherwise idle: part 2 times calls. SKIP=speed,relax (parts of bench_student.py) leaves
# parts out, e.g. for a quick look at a model while something else runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
  echo "usage: bash bench/evaluate_student.sh MODEL OUT_DIR" >&2
  exit 2
fi
MODEL=$1
OUT=$2
SO3K=${SO3K:-.venv/bin/so3k}
PYTHON=${PYTHON:-.venv/bin/python}
SKIP=${SKIP:-}
r=docs/results
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

declare -A SETS=(
  [distillation_test120]=$r/so3lr_student_v1/data/test.extxyz.xz
  [v4_study_test128]=$r/so3lr_student_v5/study_test_labels.extxyz.xz
  [v6_study_test64]=$r/so3lr_student_v7/study_v6_test64.extxyz.xz
  [v6_remd_late201]=$r/so3lr_student_v10/ab_v6_late_so3lr.extxyz.xz
)
for name in distillation_test120 v4_study_test128 v6_study_test64 v6_remd_late201; do
  xzcat "${SETS[$name]}" > "$work/$name.extxyz"
  echo "== so3k test on $name (${SETS[$name]})"
  "$SO3K" test "$MODEL" "$work/$name.extxyz" --lr-cutoff 0 --dtype float64 --plot "$OUT/parity_$name.png" \
      --json > "$OUT/test_$name.json"
  "$PYTHON" -c "import json,sys; m=json.load(open(sys.argv[1])); print(f\"   forces MAE {1e3*m['forces_mae_eV_per_A']:.1f} meV/Å, energy MAE {1e3*m['energy_per_atom_mae_eV']:.2f} meV/atom on {m['num_structures']} frames\")" "$OUT/test_$name.json"
done

"$PYTHON" bench/bench_student.py "$MODEL" --test "$work/distillation_test120.extxyz" --skip-teacher-relax -1.558 --skip "$SKIP" \
    --plot "$OUT/bond_scans.png" --scan-frames "$work/v6_study_test64.extxyz" --scan-max-frames 32 \
    --landscape-frames "$work/v6_remd_late201.extxyz" --landscape-plot "$OUT/landscape.png" \
    --out "$OUT/bench.json" | tee "$OUT/bench.txt"
echo "wrote $OUT"
