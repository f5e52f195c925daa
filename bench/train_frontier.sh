#!/bin/bash
# Fixed-budget frontier (issue #11): six students, each trained from scratch on the v1 distillation data
# (bench/student_model.yaml) for the same wall time (BUDGET s) on one pinned core, two at a time.
# Then: python bench/bench_frontier.py runs/frontier/*.so3k --test docs/results/so3lr_student_v1/data/test.extxyz.xz ...
cd "$(dirname "$0")/.."
BUDGET=${BUDGET:-1380}
train() {  # name core model-json
  local name=$1 core=$2 model=$3 extra=$4
  taskset -c $core .venv/bin/so3k train bench/student_model.yaml --set "model=$model" \
    --set time_limit_s=$BUDGET --set patience=1000 $extra --output-dir runs/frontier/$name \
    > runs/frontier/$name.log 2>&1
}
LR='"electrostatics": true, "dispersion": true, "zbl_repulsion": true'
NOLR='"electrostatics": false, "dispersion": false, "zbl_repulsion": true'
base='"num_heads": 4, "num_radial": 32'
train f2x32_lr 0 "{\"num_layers\": 2, \"num_features\": 32, \"energy_regression_dim\": 32, \"degrees\": [1, 2], \"cutoff\": 5.0, $base, $LR}" &
train f2x48_lr 1 "{\"num_layers\": 2, \"num_features\": 48, \"energy_regression_dim\": 48, \"degrees\": [1, 2], \"cutoff\": 5.0, $base, $LR}" &
wait
train f2x48_local 0 "{\"num_layers\": 2, \"num_features\": 48, \"energy_regression_dim\": 48, \"degrees\": [1, 2], \"cutoff\": 5.0, $base, $NOLR}" "--set charge_weight=0 --set hirshfeld_weight=0" &
train f2x64_lr 1 "{\"num_layers\": 2, \"num_features\": 64, \"energy_regression_dim\": 64, \"degrees\": [1, 2], \"cutoff\": 5.0, $base, $LR}" &
wait
train f3x48_lr_4.5 0 "{\"num_layers\": 3, \"num_features\": 48, \"energy_regression_dim\": 48, \"degrees\": [1, 2], \"cutoff\": 4.5, $base, $LR}" &
train f2x48_deg3_lr 1 "{\"num_layers\": 2, \"num_features\": 48, \"energy_regression_dim\": 48, \"degrees\": [1, 2, 3], \"cutoff\": 5.0, $base, $LR}" &
wait
echo all done
