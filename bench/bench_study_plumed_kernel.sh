#!/usr/bin/env bash
# The folding study with each PLUMED kernel: its settings (student v13, 8 replicas, helix-torsion metadynamics, 3 fs,
# 4 amu hydrogens), 1200 steps from the extended chain, the wheel's kernel and an -O2 one alternating, two rounds.
#   BUILT=/path/to/libplumedKernel.so bash bench/bench_study_plumed_kernel.sh   (default: the one scripts/build_plumed.sh built)
# Prints ms per step, the model's ms per call and i-PI's (everything else) per step, from so3k_driver_calls.json.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-/tmp/so3k_study_plumed_kernel}
WHEEL=$(.venv/bin/python -c "import plumed; print(plumed.BUNDLED_KERNEL_PATH)" 2>/dev/null | tail -1)
mkdir -p $WORK && ln -sf "$WHEEL" $WORK/libplumedKernel.so   # a link: the wheel's own path would count as unset
BUILT=${BUILT:-$PWD/.venv/opt/plumed/lib/libplumedKernel.so}
for round in 1 2; do
  for name in wheel built; do
    kernel=$WORK/libplumedKernel.so; [ $name = built ] && kernel=$BUILT
    dir=$WORK/${name}_$round; rm -rf $dir
    .venv/bin/so3k sample init so3k_driver/data/Ac-Ala15-NHMe_ext.xyz --model default \
      --temperatures 300,322.7,347.1,373.4,401.7,432.1,464.8,500 --steps 1200 \
      --metad helix-torsions --metad-height 2 --metad-sigma 0.8 --metad-pace 125 --metad-bias-factor 10 \
      --colvar-stride 50 --timestep 3 --thermostat-tau 100 --exchange-stride 50 --output-stride 250 \
      --hydrogen-mass 4 --backend direct --dtype float32 --seed 31415 --out $dir > /dev/null
    PLUMED_KERNEL=$kernel .venv/bin/so3k sample run $dir --quiet > $dir.log 2>&1
    .venv/bin/python -c "
import json; d=json.load(open('$dir/so3k_driver_calls.json'))
print('$name round $round: %.1f ms/step, model %.1f ms/call, i-PI %.1f ms/call, calls/step %.3f' % (d['ms_per_step'], d['model_ms_per_call'], d['idle_ms_per_call'], d['calls_per_step']))"
  done
done
