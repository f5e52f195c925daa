#!/usr/bin/env bash
# Replica exchange + well-tempered metadynamics folding of Ac-Ala15-NHMe from the extended chain.
# The study step by step (settings, pieces, cost, reading the analysis, the SO3LR check): docs/folding_study.md
#   bash examples/ala15_folding/run.sh [quick]      # MODEL=so3lr:DIR, OUT=DIR and METAD=CV may be set; so3k
#                                                   # on PATH (source .venv/bin/activate)
#
# Temperatures (K) are geometric between 300 and 500 (quick: 450); each has its own METAD on how α-helical
# every backbone φ/ψ is (METAD=helix-torsions, the default: PLUMED's ALPHABETA; the end-to-end profile is
# then reweighted from that bias), or with METAD=end-to-end on the end-to-end distance (carbonyl C of the
# acetyl cap and of Ala15, Å), which collapsed the chain into globules that never became helical
# (docs/results/ala15_folding_student_v4).
# What to expect (docs/folding_study.md, section 5): the default model's study, 8 replicas × 1000 ps in
# pieces, ended helical by torsions at 300 K (0.65) but mostly as 3₁₀-rich helices at 27.5 Å end to end, not
# the α-helix (23 Å); SO3LR itself holds a mixed 3₁₀/α helix at ~26 Å at 300 K (docs/results/ala15_helix_forms).
# Outputs: OUT (i-PI + PLUMED files), OUT/analysis.
# REFERENCE=so3lr:DIR adds the end-state check: the most compact and most extended frames at 300 K,
# evaluated and relaxed with the run's model and with SO3LR (gas phase, all pairs, float64).
#
# Modes (bundled SO3LR student so3lr-student, 162 atoms, 2 CPU cores; docs/model_card.md):
#   quick  4 replicas × 100 steps of 0.5 fs, a hill every 10 steps: about a minute including start-up.
#   full   8 replicas × 200 ps of 2 fs steps with 4 amu hydrogens, the model inside i-PI (--backend direct), a
#          hill every 0.25 ps: with the default model ~80 ms per step for all 8 replicas from the extended chain,
#          ~135 ms once the chains are compact (docs/ipi.md), so 2-4 h on 2 CPU cores: run it in pieces. TIMESTEP=3 runs the same
#          200 ps in 3 fs steps (strides scaled to the same ps): with the default model (student v13) a 223 ps
#          study at 3 fs never came near a broken bond and made 110 ps per hour per replica
#          (docs/results/timestep/study_3fs_v13); with student v6 3 fs broke an N–H bond (docs/ipi.md), so
#          check another model's bonds before using it. Ctrl-C (or a killed job) keeps a restart;
#          `so3k sample run OUT` continues, `so3k sample run OUT --steps TOTAL` extends (the 1000 ps study:
#          docs/results/ala15_folding_student_v13).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-so3lr-student}
OUT=${OUT:-examples/ala15_folding/output}
METAD=${METAD:-helix-torsions}
TIMESTEP=${TIMESTEP:-2}  # fs; full mode only
case "$TIMESTEP" in 2|3) ;; *) echo "run.sh: TIMESTEP must be 2 or 3 (fs), got $TIMESTEP" >&2; exit 2 ;; esac
STRUCTURE=so3k_driver/data/Ac-Ala15-NHMe_ext.xyz
if [ "${1:-full}" = quick ]; then
  so3k sample init "$STRUCTURE" --model "$MODEL" --out "$OUT" --force --temperatures 300:450:4 --steps 100 \
      --timestep 0.5 --exchange-stride 10 --output-stride 5 --metad "$METAD" --metad-pace 10 --metad-height 1.0
else
  so3k sample init "$STRUCTURE" --model "$MODEL" --out "$OUT" --force --temperatures 300:500:8 --steps $((200000 / TIMESTEP)) \
      --timestep "$TIMESTEP" --hydrogen-mass 4 --exchange-stride $((100 / TIMESTEP)) --output-stride $((500 / TIMESTEP)) \
      --colvar-stride $((100 / TIMESTEP)) --metad "$METAD" --metad-pace $((250 / TIMESTEP)) --metad-height 2.0 \
      --metad-sigma 0.8 --backend direct  # the v6 study's hills; strides count steps, so they scale with TIMESTEP
fi
so3k sample run "$OUT"
so3k analyze "$OUT" ${REFERENCE:+--reference "$REFERENCE"}
