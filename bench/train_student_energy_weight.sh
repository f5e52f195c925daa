#!/bin/bash
# Does a heavier energy term shrink a student's per-frame energy error (issue #11)?
# What decides whether a student samples SO3LR's ensemble is the spread σ of its per-frame energy error
# (σ ≈ 0.13 eV = 5 kT for v13 on the frames it samples; docs/results/so3lr_student_v13/README.md), not
# its force error. v13 was trained with energy_weight 0.1 (eV² per structure against (eV/Å)² per force
# component): the energy term is ~10 % of the loss. This fine-tunes v13 twice on the same SO3LR-labelled
# frames, with ENERGY_WEIGHT=0.1 (control) and ENERGY_WEIGHT=1, for EPOCHS epochs each, and the two are
# compared on the committed held-out frames (bench/errors_by_shape.py on
# docs/results/so3lr_student_v14/heldout_after274_so3lr.extxyz.xz).
#
# Data (1313 frames): the v13 study's frames up to 274.5 ps (768; helices every 1 ps, the rest every 4 ps)
#   python bench/pick_frames_by_shape.py runs/ala15_folding_v13 runs/ew/v13_helices_upto274.extxyz \
#       --every 4 --shapes helix --until-ps 274.5 --skip-ps 0 --split-helices --group-prefix "v13 "
#   python bench/pick_frames_by_shape.py runs/ala15_folding_v13 runs/ew/v13_others_upto274.extxyz \
#       --every 8 --shapes globule,extended,other --until-ps 274.5 --skip-ps 0 --group-prefix "v13 "
#   so3k label FILE --sample-with none --labeller so3lr:PATH --lr-cutoff 0 --dtype float64 -o FILE_so3lr.extxyz
# (the two labelled parts, in that order, are committed as
# docs/results/so3lr_student_v15/v13_study_upto274_so3lr.extxyz.xz and used when runs/ew lacks them)
# and three committed SO3LR-labelled sets: the v10 walkers' frames up to 91 ps (224), SO3LR's own study
# frames up to 192 ps (120) and late frames of the v6 study (201).
# Usage: ENERGY_WEIGHT=1 EPOCHS=8 bash bench/train_student_energy_weight.sh   (log: $OUT.log)
# Further rounds on the same data: INIT_FROM=MODEL.so3k starts from another model, EXTRA_DATA="A.extxyz B.extxyz"
# adds labelled frames (the training set is then $OUT.train.extxyz; the 100 validation frames are drawn
# from all of it). Student v16: bench/train_student_v16.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ENERGY_WEIGHT=${ENERGY_WEIGHT:?set ENERGY_WEIGHT, e.g. 0.1 as for v13}
EPOCHS=${EPOCHS:-8}
OUT=${OUT:-runs/ew/student_ew$ENERGY_WEIGHT}
TIME_LIMIT=${TIME_LIMIT:-6000}
DATA=runs/ew/train.extxyz
INIT_FROM=${INIT_FROM:-docs/results/so3lr_student_v13/student_v13_e13.so3k}
read -r -a EXTRA <<< "${EXTRA_DATA:-}"
STUDY_PARTS=(runs/ew/v13_helices_upto274_so3lr.extxyz runs/ew/v13_others_upto274_so3lr.extxyz)
COMMITTED=(docs/results/ala15_folding_student_v10_walkers/walkers_91ps_so3lr.extxyz.xz
           docs/results/ala15_folding_so3lr/students_by_shape_192ps/so3lr_frames_by_shape.extxyz.xz
           docs/results/so3lr_student_v10/ab_v6_late_so3lr.extxyz.xz)

STUDY_COMMITTED=docs/results/so3lr_student_v15/v13_study_upto274_so3lr.extxyz.xz
mkdir -p "$(dirname "$DATA")"
if [ ! -s "$DATA" ]; then
  if [ -s "${STUDY_PARTS[0]}" ] && [ -s "${STUDY_PARTS[1]}" ]; then
    study=(cat "${STUDY_PARTS[@]}")
  else
    study=(xzcat "$STUDY_COMMITTED")
  fi
  { "${study[@]}"; xzcat "${COMMITTED[@]}"; } > "$DATA.partial"
  mv "$DATA.partial" "$DATA"
fi
frames=$(grep -c 'Properties=' "$DATA")
[ "$frames" -eq 1313 ] || { echo "train_student_energy_weight: $DATA has $frames frames, expected 1313" >&2; exit 2; }
if [ ${#EXTRA[@]} -gt 0 ]; then
  mkdir -p "$(dirname "$OUT")"
  cat "$DATA" "${EXTRA[@]}" > "$OUT.train.extxyz"
  DATA=$OUT.train.extxyz
  frames=$(grep -c 'Properties=' "$DATA")
fi

exec .venv/bin/so3k train bench/student_model.yaml --data "$DATA" --num-train $((frames - 100)) --set num_valid=100 \
    --set "model={}" --set init_from="$INIT_FROM" \
    --set learning_rate=0.0003 --set warmup_steps=50 --set decay_steps=20000 --set decay_rate=0.1 \
    --set energy_weight="$ENERGY_WEIGHT" --set charge_weight=300 --set epochs="$EPOCHS" --set patience=60 \
    --set time_limit_s="$TIME_LIMIT" --output-dir "$OUT" >> "$OUT.log" 2>&1
