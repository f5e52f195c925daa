#!/usr/bin/env bash
# Well-tempered metadynamics of Ac-Ala3-NHMe at 300 K on the central residue's backbone torsions (φ2, ψ2).
#   bash examples/ala3_metad/run.sh [quick]      # MODEL=so3lr:DIR, OUT=DIR and WALKERS=N may be set; so3k on
#                                                # PATH (source .venv/bin/activate)
#
# One temperature = NVT, no replica exchange; --metad backbone biases phi/psi of the central residue
# (COLVAR/HILLS in rad and kJ/mol). OUT/analysis gets the free-energy surface (free_energy.png, kJ/mol
# over degrees), the Ramachandran plot and summary.md. WALKERS=N runs N walkers that build one bias
# together (PLUMED multiple walkers), all N in one model call per step; the analysis pools them.
# Modes (2 CPU cores, 42 atoms): quick 300 steps ≈ 30 s; full 100 000 steps of 0.5 fs (50 ps) ≈ 1–2 h,
# in pieces if need be: `so3k sample run OUT` continues from the newest restart.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-ala3-xtb}  # trained on Ac-Ala3-NHMe (GFN2-xTB); the SO3LR student (default) knows only Ac-Ala15-NHMe
OUT=${OUT:-examples/ala3_metad/output}
WALKERS=${WALKERS:-1}
if [ "${1:-full}" = quick ]; then STEPS=300 PACE=10 STRIDE=5; else STEPS=100000 PACE=250 STRIDE=50; fi
so3k sample init so3k_driver/data/Ac-Ala3-NHMe_ext.xyz --model "$MODEL" --out "$OUT" --force --temperatures 300 \
    --walkers "$WALKERS" \
    --steps "$STEPS" --timestep 0.5 --output-stride "$STRIDE" --metad backbone --metad-sigma 0.35 \
    --metad-height 1.2 --metad-bias-factor 6 --metad-pace "$PACE"
so3k sample run "$OUT"
so3k analyze "$OUT"
