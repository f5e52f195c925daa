"""The REMD + metadynamics folding example in quick mode (in-process random-weight model): it finishes
with exchanges and per-temperature HILLS, and the analysis produces every plot from those files."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, SO3KRATES_RANDOM
from so3k_driver.analysis.report import PLOTS

pytestmark = pytest.mark.shared


def test_quick_remd_metad_folding_run(tmp_path):
    command = [sys.executable, str(REPO / "examples" / "ala15_folding" / "run.py"), "--quick", "--steps", "60",
               "--model", SO3KRATES_RANDOM, "--backend", "direct", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "run"
    temperatures = json.loads((run_dir / "temperatures.json").read_text())["temperatures_K"]
    assert len(temperatures) == 4
    swaps = (run_dir / "sim.remd_idx").read_text().split("\n")
    assert len([line for line in swaps if line.strip()]) >= 1  # at least one accepted exchange
    for k in range(4):
        hills = [line for line in (run_dir / f"HILLS.T{k}").read_text().splitlines() if not line.startswith("#")]
        assert len(hills) == 6  # 60 steps / PACE 10
        assert f"TEMP={temperatures[k]}" in (run_dir / f"plumed_T{k}.dat").read_text()
    analysis = run_dir / "analysis"
    for plot in PLOTS:
        assert (analysis / plot).stat().st_size > 5000, plot
    summary = json.loads((analysis / "summary.json").read_text())
    assert [t["temperature_K"] for t in summary["temperatures"]] == temperatures
    assert all(abs(t["end_to_end_first_A"] - 54.66) < 0.5 for t in summary["temperatures"])  # Å, extended start
    assert "| T (K) |" in (analysis / "summary.md").read_text()
