#!/usr/bin/env bash
# The GPU check, run whenever the device tool lends a GPU (one call, < 8 minutes; see bench/gpu_check.py).
# The GPU machine has no network: bring CUDA JAX as wheels first, on this machine, into ./.whl (ignored by git):
#   python3 -m pip download --only-binary=:all: --python-version 3.12 --platform manylinux_2_27_x86_64 \
#       -d .whl "jax[cuda12]==$(.venv/bin/python -c 'import jax; print(jax.__version__)')" flax e3x ase vesin ipi optax \
#       orbax-checkpoint pyyaml matplotlib rich
# then, in the device tool: carry .whl and run `bash bench/gpu_check.sh` (results in $OUT/gpu_check.json).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
  export PATH=/tmp/site/bin:$PATH
fi
export XLA_PYTHON_CLIENT_PREALLOCATE=false
python3 -c "import jax; print('devices:', jax.devices())"
SO3LR_DIR=${SO3LR_DIR:-}
timeout 470 python3 bench/gpu_check.py --out "$OUT/gpu_check.json" ${SO3LR_DIR:+--so3lr "$SO3LR_DIR"} "$@"
