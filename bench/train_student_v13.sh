#!/bin/bash
# Student v13 (issues #11, #13): student v12 (epoch 22; v10 fine-tuned with SO3LR's charges weighted 30 x)
# fine-tuned once more, now with frames SO3LR sampled itself. On 120 frames of the SO3LR folding study
# (docs/results/ala15_folding_so3lr/README.md, "The students on SO3LR's helices") v12 has the lowest force
# error of the students (96-102 meV/Å, v10 116-124) but puts helices 0.23 eV too low against globules
# (v10 0.06): none of its data held a helix that SO3LR had made. Here v12's own data (4524 frames) meets
# 729 SO3LR-labelled frames of that study up to 192 ps (every 2 ps of each configuration, the helices every
# 1 ps: 61 helix, 44 globule, 141 extended, 483 in between), each twice. Held out, split in time: the study's
# frames after 192 ps (bench/pick_frames_by_shape.py --skip-ps 193).
#
# The frames come from
#   python bench/pick_frames_by_shape.py runs/ala15_folding_so3lr runs/student_v13_data/so3lr_study_upto192.extxyz \
#       --every 4 --until-ps 192
#   so3k label runs/student_v13_data/so3lr_study_upto192.extxyz --sample-with none \
#       --labeller so3lr:PATH --lr-cutoff 0 --dtype float64 -o runs/student_v13_data/so3lr_study_upto192_so3lr.extxyz
# Needs runs/student_v12_data/train.extxyz (bench/train_student_v12.sh builds it).
# Resumable: run it again; the time limit counts all pieces. Log: $OUT.log.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/student_v13}
TIME_LIMIT=${TIME_LIMIT:-4800}
V12_DATA=runs/student_v12_data/train.extxyz
STUDY=runs/student_v13_data/so3lr_study_upto192_so3lr.extxyz
DATA=runs/student_v13_data/train.extxyz

for need in "$V12_DATA" "$STUDY"; do
  [ -s "$need" ] || { echo "train_student_v13: $need is missing: see this script's header" >&2; exit 2; }
done
if [ ! -s "$DATA" ]; then
  cat "$V12_DATA" "$STUDY" "$STUDY" > "$DATA.partial"
  mv "$DATA.partial" "$DATA"
fi
frames=$(grep -c 'Properties=' "$DATA")
[ "$frames" -eq 5982 ] || { echo "train_student_v13: $DATA has $frames frames, expected 5982" >&2; exit 2; }

mkdir -p "$(dirname "$OUT")"
exec .venv/bin/so3k train bench/student_model.yaml --data "$DATA" --num-train 5832 --set num_valid=150 \
    --set "model={}" --set init_from=docs/results/so3lr_student_v12/student_v12_e22.so3k \
    --set learning_rate=0.0003 --set warmup_steps=100 --set decay_steps=60000 --set decay_rate=0.1 \
    --set energy_weight=0.1 --set charge_weight=300 --set patience=60 --set time_limit_s="$TIME_LIMIT" \
    --output-dir "$OUT" >> "$OUT.log" 2>&1
