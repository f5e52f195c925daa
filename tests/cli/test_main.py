"""cli/main.py: the parser of every subcommand is built without the model code; a command that runs a model
starts itself again with huge pages."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from so3k_driver.evaluation.host_memory import HUGE_PAGE_TUNABLES, huge_pages_available

ALA3 = Path(__file__).resolve().parents[2] / "ipi_inputs" / "ala3.xyz"

PROBE = """
import sys
from so3k_driver.cli.main import build_parser
parser = build_parser()
heavy = sorted(name for name in ("jax", "flax", "optax") if name in sys.modules)
print(",".join(heavy))
"""


def test_building_the_parser_imports_no_jax():
    # `so3k --help`, `so3k minima --help` and a mistyped flag answer in ~0.4 s instead of ~3.7 s
    # (JAX and Flax take ~2 s to import on the project's 2-core machine)
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"building the parser imported {result.stdout.strip()}"


def _environment_once_jax_is_loaded(process: subprocess.Popen) -> list[str]:
    """The environment /proc shows for ``process`` once it has loaded jaxlib (so after any restart in place:
    the model is loaded after it), or [] when it ended first."""
    import time
    from pathlib import Path

    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if "jaxlib" in Path(f"/proc/{process.pid}/maps").read_text():
                return Path(f"/proc/{process.pid}/environ").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            break
        time.sleep(0.1)
    return []


@pytest.mark.skipif(not huge_pages_available(), reason="transparent huge pages through glibc >= 2.35")
def test_a_command_that_runs_a_model_restarts_in_place_with_huge_pages_unless_switched_off(tmp_path):
    """`so3k serve` (the model in the command's own process, i-PI started by the user) gets what i-PI and the
    drivers of `so3k run` get: GLIBC_TUNABLES=glibc.malloc.hugetlb=1, by starting itself again, same pid."""
    plain = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "SO3K_HOST_MEMORY")}
    command = [sys.executable, "-m", "so3k_driver.cli", "serve", "ala3-xtb", "--unix", f"nobody-{os.getpid()}",
               "--structure", str(ALA3), "--connect-timeout", "3"]
    for switch, expected in (("", [f"GLIBC_TUNABLES={HUGE_PAGE_TUNABLES}"]), ("0", [])):
        process = subprocess.Popen(command, env={**plain, "SO3K_HOST_MEMORY": switch}, cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        environment = _environment_once_jax_is_loaded(process)
        _, error = process.communicate(timeout=120)
        assert environment, f"the command ended before loading the model: {error}"
        assert [entry for entry in environment if entry.startswith("GLIBC_TUNABLES=")] == expected
        # still the same command: its one-line error for a missing i-PI, exit 2
        assert process.returncode == 2 and error.count("\n") == 1 and "cannot connect to i-PI" in error, error
