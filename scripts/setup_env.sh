#!/usr/bin/env bash
# Create ./.venv (if missing) and install so3k_driver with everything its commands and tests need.
# Idempotent: a second run only checks. Needs Python >= 3.11 and the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import so3k_driver, jax, flax, vesin, ipi, plumed, pytest, xdist, rich, filelock, threadpoolctl" 2>/dev/null; then
  echo "[setup] installing so3k_driver and its dependencies (a few minutes the first time)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  # Editable, for development; tests/test_packaging.py checks the real (wheel) install.
  .venv/bin/python -m pip install --quiet -e ".[test]"
  # PLUMED 2.11 kernel + its Python module (sets PLUMED_KERNEL); --no-deps: it is only the kernel.
  .venv/bin/python -m pip install --quiet --no-deps hillclimber==0.1.8
fi
echo "[setup] environment ready: $(.venv/bin/python -c 'import jax, so3k_driver; print("so3k_driver", so3k_driver.__version__, "jax", jax.__version__, jax.devices())')"
