#!/usr/bin/env bash
# Wheels the GPU machine lacks, into ./.whl (ignored by git), for bench/gpu_check.sh. Run it here (it needs
# the package index); the device tool then carries .whl (its limit: 64 MiB for the working tree and the
# carried paths together).
#
# The GPU image already holds CUDA JAX (0.11.2 with the CUDA 13 plugin when last read), flax, optax,
# orbax-checkpoint, matplotlib, scipy, rich, pyyaml, threadpoolctl, filelock, etils, absl-py and jaxtyping
# (/work/.library/device/KINDS.md), so only these travel: ase, vesin, i-PI and more-itertools.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
versions=$(.venv/bin/python - <<'EOF'
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in ("ase", "vesin", "ipi", "more-itertools")))
EOF
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $versions
echo "wheels for the GPU machine ($versions):"
du -ch .whl/*.whl | tail -n +1
bash bench/gpu_tree.sh size .whl $([ -d .so3lr ] && echo .so3lr)
