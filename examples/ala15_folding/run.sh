#!/usr/bin/env bash
# Replica exchange + well-tempered metadynamics folding of Ac-Ala15-NHMe from the extended chain.
#   bash examples/ala15_folding/run.sh [quick]      # MODEL=so3lr:DIR and OUT=DIR may be set; so3k on PATH
#                                                   # (source .venv/bin/activate)
#
# Temperatures (K) are geometric between 300 and 450; each has its own METAD on the end-to-end distance
# (carbonyl C of the acetyl cap and of Ala15, Å). Outputs: OUT (i-PI + PLUMED files), OUT/analysis.
#
# Modes (bundled default model, 162 atoms, 2 CPU cores):
#   quick  4 replicas × 100 steps of 0.5 fs, a hill every 10 steps: ≈ 30 s including start-up.
#   full   8 replicas × 200 000 steps of 1 fs (200 ps), a hill every 500 steps. Measured: 0.20–0.25 s per
#          step (all 8 replicas), so ≈ 11–14 h on 2 CPU cores: run it in pieces. Ctrl-C (or a killed job)
#          keeps a restart; `so3k sample run OUT` continues, `so3k sample run OUT --steps TOTAL` extends.
#          The first 20.5 ps took the end-to-end distance from 54.7 Å to 41–48 Å with no helix yet, and
#          one configuration blew apart at 450 K after 19 ps: the bundled model was trained on
#          Ac-Ala3-NHMe only. The driver stops a run when forces leave the physical range and
#          so3k analyze flags broken configurations. Folding needs a model made for it (so3lr:DIR).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-default}
OUT=${OUT:-examples/ala15_folding/output}
STRUCTURE=so3k_driver/data/Ac-Ala15-NHMe_ext.xyz
if [ "${1:-full}" = quick ]; then
  so3k sample init "$STRUCTURE" --model "$MODEL" --out "$OUT" --force --temperatures 300:450:4 --steps 100 \
      --timestep 0.5 --exchange-stride 10 --output-stride 5 --metad end-to-end --metad-pace 10 --metad-height 1.0
else
  so3k sample init "$STRUCTURE" --model "$MODEL" --out "$OUT" --force --temperatures 300:450:8 --steps 200000 \
      --timestep 1.0 --exchange-stride 100 --output-stride 500 --metad end-to-end --metad-pace 500 \
      --metad-height 1.2 --colvar-stride 100
fi
so3k sample run "$OUT"
so3k analyze "$OUT"
