#!/bin/bash
# Student v18 (issue #11): v13 fine-tuned in one stage on both kinds of frames that earlier fine-tunes saw apart.
# v15 (v13 + 1313 compact study frames) fixed v13's lean to 3-10 helices (helix metadynamics at 300 K: 3.2 kJ/mol
# for the alpha-rich state, SO3LR 6 +- 3, v13 10.7) but put helices 0.22-0.31 eV too high against extended chains;
# v17 (v16 + extended chains, a second stage) over-corrected to the alpha side. Here v15's 1313 frames and the
# 2318 committed SO3LR-labelled frames with extended chains and minima that v17 used (the v1 distillation frames,
# v6's relaxation paths, v7's study frames, v3's stretched bonds) go into one fine-tune of v13, with v15's settings.
# Usage: EPOCHS=4 TIME_LIMIT=1500 bash bench/train_student_v18.sh   (log: runs/v18/student_v18.log)
# Then: SKIP=speed bash bench/evaluate_student.sh runs/v18/student_v18/model.so3k OUT
set -euo pipefail
cd "$(dirname "$0")/.."
r=docs/results
EXTRA=runs/v18/extended_sets_so3lr.extxyz
mkdir -p runs/v18
bash bench/extended_sets.sh "$EXTRA"
export ENERGY_WEIGHT=0.1 INIT_FROM=$r/so3lr_student_v13/student_v13_e13.so3k EXTRA_DATA="$EXTRA"
export OUT=runs/v18/student_v18 EPOCHS=${EPOCHS:-4} TIME_LIMIT=${TIME_LIMIT:-7200}
exec bash bench/train_student_energy_weight.sh
