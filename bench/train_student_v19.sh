#!/bin/bash
# Student v19 (issue #11): v18 without the v1 distillation frames of MD from the alpha-helix.
# v18 (bench/train_student_v18.sh: v13 + v15's 1313 compact frames + 2318 extended-chain sets, one stage) mended
# helix - extended but put relaxed 3-10 forms 0.18-0.21 eV too high against the alpha-helix, as v17 did; both added
# the v1 distillation set, whose 473 frames from Ac-Ala15-NHMe_folded.xyz are MD of the alpha-helix at 300-600 K
# (SO3LR labels in float32). Here those 473 are left out; everything else is v18's.
# Usage: EPOCHS=4 TIME_LIMIT=1500 bash bench/train_student_v19.sh   (log: runs/v19/student_v19.log)
set -euo pipefail
cd "$(dirname "$0")/.."
r=docs/results
EXTRA=runs/v19/extended_sets_without_helix_md_so3lr.extxyz
mkdir -p runs/v19
WITHOUT_HELIX_MD=1 bash bench/extended_sets.sh "$EXTRA"
export ENERGY_WEIGHT=0.1 INIT_FROM=$r/so3lr_student_v13/student_v13_e13.so3k EXTRA_DATA="$EXTRA"
export OUT=runs/v19/student_v19 EPOCHS=${EPOCHS:-4} TIME_LIMIT=${TIME_LIMIT:-7200}
exec bash bench/train_student_energy_weight.sh
