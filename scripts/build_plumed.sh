#!/usr/bin/env bash
# Build an optimised PLUMED kernel into this environment (.venv/opt/plumed); so3k then prefers it.
#
# Why: the PLUMED that scripts/setup_env.sh installs (the hillclimber 0.1.8 wheel, PLUMED 2.11-dev) is
# compiled without optimisation (its build sets CXXFLAGS=-Wno-error, which drops -O2). One torsion costs
# ~20 µs there, and the helix-torsion metadynamics of the folding study 1.3 ms per replica and step
# (0.16 ms with -O2); i-PI's share of a study step falls by ~9 ms (docs/ipi.md, "PLUMED's own cost").
# This script compiles the same PLUMED source with -O2: ~25 min on 2 free cores (JOBS=16 on a node: a few
# minutes), once.
#
#   bash scripts/build_plumed.sh     # JOBS=2; PREFIX=$VIRTUAL_ENV/opt/plumed, else .venv/opt/plumed here
#
# A kernel you set yourself (PLUMED_KERNEL=/path/to/libplumedKernel.so, e.g. from your cluster's PLUMED
# module or conda-forge) always wins over this one; `so3k sample run` prints the kernel it uses.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${PREFIX:-${VIRTUAL_ENV:-$PWD/.venv}/opt/plumed}"  # so3k looks in sys.prefix/opt/plumed
JOBS="${JOBS:-2}"
# The source of the PLUMED that setup_env.sh installs: the hillclimber sdist holds it (external/plumed2).
URL="https://files.pythonhosted.org/packages/5d/c3/a479b60a304d105b8894daffb41045fdb20016b425ba367ea612b4d24d06/hillclimber-0.1.8.tar.gz"
SHA256="795022caa8954149877bcb812a1ec14eb013c67a92abf0d318c2a603dc0b5f22"

if [ -f "$PREFIX/lib/libplumedKernel.so" ]; then
  echo "[plumed] already built: $PREFIX/lib/libplumedKernel.so (remove $PREFIX to build again)"
  exit 0
fi
for tool in curl tar make g++; do
  command -v "$tool" >/dev/null || { echo "[plumed] error: $tool is needed to build PLUMED" >&2; exit 2; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "[plumed] downloading the PLUMED source (hillclimber 0.1.8 sdist, 4.4 MB)"
curl -fsSL -o "$work/src.tar.gz" "$URL"
echo "$SHA256  $work/src.tar.gz" | sha256sum -c --quiet - \
  || { echo "[plumed] error: the download does not match its sha256" >&2; exit 2; }
tar -C "$work" -xzf "$work/src.tar.gz"
cd "$work/hillclimber-0.1.8/external/plumed2"
start=$(date +%s)
echo "[plumed] configuring (-O2, default modules, no Python module: the hillclimber one is used)"
./configure --prefix="$PREFIX" --disable-python --disable-doc CXXFLAGS="-O2" > "$work/configure.log" 2>&1 \
  || { tail -20 "$work/configure.log" >&2; echo "[plumed] error: configure failed" >&2; exit 2; }
echo "[plumed] compiling with $JOBS jobs (~370 files; progress: the count below every minute)"
make -j"$JOBS" > "$work/make.log" 2>&1 &
make_pid=$!
while kill -0 "$make_pid" 2>/dev/null; do
  sleep 60
  echo "[plumed] $(find src -name '*.o' | wc -l) files compiled, $(( $(date +%s) - start )) s"
done
wait "$make_pid" || { tail -20 "$work/make.log" >&2; echo "[plumed] error: make failed" >&2; exit 2; }
make install > "$work/install.log" 2>&1 || { tail -20 "$work/install.log" >&2; exit 2; }
echo "[plumed] built in $(( $(date +%s) - start )) s: $PREFIX/lib/libplumedKernel.so (so3k uses it unless PLUMED_KERNEL is set)"
