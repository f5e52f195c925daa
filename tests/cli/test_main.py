"""cli/main.py: the parser of every subcommand is built without the model code."""

import subprocess
import sys

PROBE = """
import sys
from so3k_driver.cli.main import build_parser
parser = build_parser()
heavy = sorted(name for name in ("jax", "flax", "e3x", "optax") if name in sys.modules)
print(",".join(heavy))
"""


def test_building_the_parser_imports_no_jax():
    # `so3k --help`, `so3k minima --help` and a mistyped flag answer in ~0.4 s instead of ~3.7 s
    # (JAX, Flax and e3x take ~2.6 s to import on the project's 2-core machine)
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"building the parser imported {result.stdout.strip()}"
