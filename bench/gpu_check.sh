#!/usr/bin/env bash
# The GPU check, run whenever the device tool lends a GPU (one call, < 8 minutes; see bench/gpu_check.py).
# The GPU machine has no network but its image has CUDA JAX and most of what so3k needs. Before the call,
# here: `bash bench/gpu_wheels.sh` (the missing wheels into ./.whl, ~8 MB) and
# `mkdir -p .so3lr && cp -r ../shared/reference/so3lr/. .so3lr/` (SO3LR's parameters, 2 MB; ../shared does
# not travel; .so3lr is ignored through .git/info/exclude). Then, in the device tool:
#   run(command="bash bench/gpu_check.sh", carry=[".whl", ".so3lr"], timeout_s=540)
# and the results come back as $OUT/gpu_check.json and $OUT/gpu_check.log.
# The call carries at most 64 MiB (the working tree's tracked and untracked-not-ignored files + the carried
# paths), and the committed results alone are ~140 MB (2026-12-07). Before the call
#   bash bench/gpu_tree.sh light && bash bench/gpu_tree.sh size .whl .so3lr     # must say "fits"
# (removes docs/results' large files from the working tree, not from git), and after it
#   bash bench/gpu_tree.sh restore
# The first loan (2026-12-04, docs/results/gpu_h200/) left two follow-ups for the next one, each one call
# after this one (same carry; each ~2-4 minutes): the packed transfers and k-d tree lists made after it,
#   run(command="python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl; PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH python3 bench/gpu_latency.py --so3lr $PWD/.so3lr --out $OUT/gpu_latency.json", ...)
# and the REMD step with a shorter poll latency on the GPU machine's 16 host cores,
#   ... cd bench && python3 bench_remd_step.py --model default --structure ../so3k_driver/data/Ac-Ala15-NHMe_ext.xyz --rounds 1 --steps 500 --cases direct,direct-lat1e-4,direct-instant --json $OUT/remd_step_gpu.json
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
PYTHON=${PYTHON:-python3}  # the image's Python, which holds its CUDA JAX
if [ -d .whl ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
  export PATH=/tmp/site/bin:$PATH  # i-pi
else
  export PYTHONPATH=$PWD
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONUNBUFFERED=1
SO3LR_DIR=${SO3LR_DIR:-$([ -d .so3lr ] && echo "$PWD/.so3lr" || true)}
{
  "$PYTHON" -c "import jax, flax, ase; print('devices:', jax.devices(), '| jax', jax.__version__, '| flax', flax.__version__)"
  timeout 470 "$PYTHON" bench/gpu_check.py --out "$OUT/gpu_check.json" ${SO3LR_DIR:+--so3lr "$SO3LR_DIR"} "$@"
} 2>&1 | tee "$OUT/gpu_check.log"
