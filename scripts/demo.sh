#!/usr/bin/env bash
# The main job: install, then
#   1. evaluate the model on the shipped Ac-Ala3-NHMe (energy eV, forces eV/Å, timing);
#   2. run replica exchange + PLUMED metadynamics of Ac-Ala15-NHMe from the extended chain through
#      i-PI and the socket driver (quick mode: 4 replicas x 100 steps, ~20 s on 2 CPU cores), then
#      analyse it: end-to-end distance, radius of gyration, helix fraction, free energy, Ramachandran.
# MODEL defaults to the bundled SO3LR student (so3lr-student, made for Ac-Ala peptides; docs/model_card.md);
# any spec works: MODEL=so3lr:/path/to/params bash scripts/demo.sh
# DEMO_STEPS=2000 runs longer (1 ps per replica); OUT sets the output folder (default runs/demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
MODEL=${MODEL:-so3lr-student}
OUT=${OUT:-runs/demo}
.venv/bin/so3k info "$MODEL"
.venv/bin/so3k eval "$MODEL" so3k_driver/data/Ac-Ala3-NHMe_ext.xyz
if [ "$OUT" = runs/demo ]; then
  rm -rf "$OUT"  # the default demo folder is disposable; elsewhere --force moves an old study to OUT.bck.N
fi
# Quick mode: 4 replicas (geometric 300-450 K) x DEMO_STEPS steps of 0.5 fs, a hill every 10 steps.
.venv/bin/so3k sample init so3k_driver/data/Ac-Ala15-NHMe_ext.xyz --model "$MODEL" --out "$OUT" --force \
    --temperatures 300:450:4 --steps "${DEMO_STEPS:-100}" --timestep 0.5 --exchange-stride 10 --output-stride 5 \
    --metad end-to-end --metad-pace 10 --metad-height 1.0
.venv/bin/so3k sample run "$OUT"
.venv/bin/so3k analyze "$OUT"
echo "plots and summary: $OUT/analysis (summary.md, *.png); continue or extend with: so3k sample run $OUT --steps TOTAL"
