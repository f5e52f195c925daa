#!/usr/bin/env bash
# Wheels the GPU machine lacks, into ./.whl (ignored by git), for bench/gpu_check.sh. Run it here (it needs
# the package index); the device tool then carries .whl (its limit: 64 MiB for the working tree and the
# carried paths together).
#
# The GPU image already holds CUDA JAX (0.11.2 with the CUDA 13 plugin when last read), flax, optax,
# orbax-checkpoint, matplotlib, scipy, rich, pyyaml, threadpoolctl, filelock, sympy, etils, absl-py and
# jaxtyping (/work/.library/device/KINDS.md), so only these travel: e3x, ase, vesin, i-PI and
# more-itertools. e3x's wheel is 95 MB, 94 MB of it a Wigner-D and 4 MB a Clebsch-Gordan lookup table
# that only e3x.so3.rotations.wigner_d and e3x.so3.clebsch_gordan read (lazily, and they would rebuild
# them if called; so3k uses e3x's spherical harmonics alone), so it travels without them: 0.3 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
versions=$(.venv/bin/python - <<'EOF'
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in ("e3x", "ase", "vesin", "ipi", "more-itertools")))
EOF
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $versions
e3x_wheel=$(ls .whl/e3x-*.whl)
python3 - "$e3x_wheel" <<'EOF'
import sys, zipfile, os
path = sys.argv[1]
DROPPED = ("so3/_wigner_d_lut.npz", "so3/_clebsch_gordan_lut.npz")
slim = path + ".slim"
with zipfile.ZipFile(path) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
    for item in source.infolist():
        if item.filename.endswith(DROPPED):
            continue
        data = source.read(item.filename)
        if item.filename.endswith(".dist-info/RECORD"):  # drop the table's line so the record stays true
            data = b"\n".join(line for line in data.split(b"\n") if not any(d.encode() in line for d in DROPPED))
        target.writestr(item, data)
os.replace(slim, path)
EOF
echo "wheels for the GPU machine ($versions):"
du -ch .whl/*.whl | tail -n +1
tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
extra=$(du -cb .whl $([ -d .so3lr ] && echo .so3lr) | tail -1 | cut -f1)
echo "travels with the device call: $(( (tree + extra) / 1048576 )) MiB of the 64 MiB limit (tracked files $(( tree / 1048576 )) MiB)"
