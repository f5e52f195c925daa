#!/usr/bin/env bash
# The main job: install, then evaluate a model on the shipped Ac-Ala3-NHMe and Ac-Ala15-NHMe structures,
# printing energy (eV), forces (eV/Å) and timing. MODEL defaults to the bundled model ('default');
# any model spec works: MODEL=so3lr:/path/to/so3lr/params bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
MODEL=${MODEL:-default}
if [ "$MODEL" = default ] && ! .venv/bin/python -c "from so3k_driver.model_io import load_model; load_model('default')" 2>/dev/null; then
  # No bundled model in this checkout yet: fall back to the published SO3LR weights beside the repo.
  MODEL="so3lr:$(cd .. && pwd)/shared/reference/so3lr"
fi
DATA=so3k_driver/data
.venv/bin/so3k info "$MODEL"
.venv/bin/so3k eval "$MODEL" "$DATA/Ac-Ala3-NHMe_ext.xyz"
.venv/bin/so3k eval "$MODEL" "$DATA/Ac-Ala15-NHMe_ext.xyz" | sed -n '1,4p'
