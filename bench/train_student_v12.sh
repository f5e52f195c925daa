#!/bin/bash
# Student v12 (issues #11, #13): student v10 (epoch 53, the bundled default) fine-tuned on SO3LR labels of
# compact and helical chains from three studies, gentler than v11. v11 (docs/results/so3lr_student_v11/) added
# 136 frames of v10's own walkers 4 times with energy weight 0.3: it fixed v10's tilt on held-out walker frames
# (compact - extended -0.509 -> +0.078 eV) but overshot the globules, putting helices 0.37 eV below them
# relative to SO3LR. Here the walker frames come twice, beside two more sets of compact chains labelled by
# SO3LR that anchor the globules (128 frames of the v4 study, 64 of the v6 study; both were test sets of
# earlier students and are no longer held out). Held out, as for v11: the 88 walker frames from 60 ps on and
# the 201 late v6/v7 study frames (docs/results/so3lr_student_v10/ab_v6_late_so3lr.extxyz.xz).
#
# ENERGY_WEIGHT (default 0.1, v10's own) and CHARGE_WEIGHT (default 10, v10's own; per e^2 on SO3LR's partial
# charges) are the variables between runs; OUT names the run. Why the charges: bench/energy_error_terms.py
# splits v10's energy error on the held-out frames into electrostatics, dispersion and the rest; its charges
# alone put helices 0.10-0.13 eV too low in electrostatic energy, on both held-out sets.
# Needs runs/student_v10_data/v8_train.extxyz (built by bench/train_student_v10.sh) and the walker split of
# bench/train_student_v11.sh (runs/student_v11_data/walkers_train.extxyz).
# Resumable: run it again; the time limit counts all pieces. Log: $OUT.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ENERGY_WEIGHT=${ENERGY_WEIGHT:-0.1}
CHARGE_WEIGHT=${CHARGE_WEIGHT:-10}
OUT=${OUT:-runs/student_v12}
TIME_LIMIT=${TIME_LIMIT:-10800}
V10_DATA=${V10_DATA:-runs/student_v10_data/v8_train.extxyz}
WALKERS_TRAIN=runs/student_v11_data/walkers_train.extxyz
DATA=runs/student_v12_data/train.extxyz

for need in "$V10_DATA" "$WALKERS_TRAIN"; do
  [ -s "$need" ] || { echo "train_student_v12: $need is missing: see this script's header" >&2; exit 2; }
done
if [ ! -s "$DATA" ]; then
  mkdir -p "$(dirname "$DATA")"
  { cat "$V10_DATA" "$WALKERS_TRAIN" "$WALKERS_TRAIN"
    xz -dc docs/results/so3lr_student_v5/study_test_labels.extxyz.xz
    xz -dc docs/results/so3lr_student_v7/study_v6_test64.extxyz.xz; } > "$DATA.partial"
  mv "$DATA.partial" "$DATA"
fi
frames=$(grep -c 'Properties=' "$DATA")
[ "$frames" -eq 4524 ] || { echo "train_student_v12: $DATA has $frames frames, expected 4524" >&2; exit 2; }

mkdir -p "$(dirname "$OUT")"
exec .venv/bin/so3k train bench/student_model.yaml --data "$DATA" --num-train 4384 --set num_valid=140 \
    --set "model={}" --set init_from=docs/results/so3lr_student_v10/student_v10_e53.so3k \
    --set learning_rate=0.0005 --set warmup_steps=100 --set decay_steps=60000 --set decay_rate=0.1 \
    --set energy_weight="$ENERGY_WEIGHT" --set charge_weight="$CHARGE_WEIGHT" --set patience=60 --set time_limit_s="$TIME_LIMIT" \
    --output-dir "$OUT" >> "$OUT.log" 2>&1
