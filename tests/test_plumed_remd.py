"""The REMD + metadynamics folding example in quick mode (in-process bundled model): it finishes
with exchanges and per-temperature HILLS, the analysis produces every plot from those files, and
--resume extends the run (outputs appended, PLUMED's hills kept and continued)."""

import json
import subprocess
import sys

import pytest

from conftest import REPO
from so3k_driver.sampling.analysis.report import PLOTS


def hill_lines(path):
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def test_quick_remd_metad_folding_run(tmp_path):
    command = [sys.executable, str(REPO / "examples" / "ala15_folding" / "run.py"), "--quick", "--steps", "60",
               "--model", "default", "--backend", "direct", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "run"
    temperatures = json.loads((run_dir / "temperatures.json").read_text())["temperatures_K"]
    assert len(temperatures) == 4
    swaps = (run_dir / "sim.remd_idx").read_text().split("\n")
    assert len([line for line in swaps if line.strip()]) >= 1  # at least one accepted exchange
    for k in range(4):
        assert len(hill_lines(run_dir / f"HILLS.T{k}")) == 6  # 60 steps / PACE 10
        assert f"TEMP={temperatures[k]}" in (run_dir / f"plumed_T{k}.dat").read_text()
    analysis = run_dir / "analysis"
    for plot in PLOTS:
        assert (analysis / plot).stat().st_size > 5000, plot
    summary = json.loads((analysis / "summary.json").read_text())
    assert [t["temperature_K"] for t in summary["temperatures"]] == temperatures
    assert all(abs(t["end_to_end_first_A"] - 54.66) < 0.5 for t in summary["temperatures"])  # Å, extended start
    assert "| T (K) |" in (analysis / "summary.md").read_text()

    # Extend the same run to 90 steps: i-PI continues from RESTART, PLUMED restarts and appends hills.
    first_hills = [hill_lines(run_dir / f"HILLS.T{k}") for k in range(4)]
    resumed = subprocess.run([sys.executable, str(REPO / "examples" / "ala15_folding" / "run.py"), "--resume",
                              "--steps", "90", "--out", str(tmp_path)], capture_output=True, text=True, timeout=200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run_dir / "resume_from_step_60.xml").exists()
    for k in range(4):
        hills = hill_lines(run_dir / f"HILLS.T{k}")
        assert len(hills) == 9 and hills[:6] == first_hills[k]  # 90 / PACE 10, the first six untouched
        steps = [int(float(line.split()[0])) for line in (run_dir / f"T-{k}_sim.out").read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        assert steps == sorted(set(steps)) and steps[-1] == 90  # one continuous, appended series
    assert "30 steps × 4 replicas" in resumed.stdout  # the wall time reported is for this piece


def test_a_new_run_sets_the_previous_one_aside(tmp_path):
    from so3k_driver.sampling import run as sampling_run

    run_dir = tmp_path / "run"
    assert sampling_run.set_aside(run_dir) is None
    run_dir.mkdir()
    (run_dir / "HILLS.T0").write_text("hills\n")
    assert sampling_run.set_aside(run_dir) == tmp_path / "run.bck.0"
    run_dir.mkdir()
    (run_dir / "HILLS.T0").write_text("newer\n")
    assert sampling_run.set_aside(run_dir) == tmp_path / "run.bck.1"
    assert (tmp_path / "run.bck.0" / "HILLS.T0").read_text() == "hills\n"
    with pytest.raises(Exception, match="nothing to resume"):
        sampling_run.run(_prepared(tmp_path / "empty"), resume=True)


def _prepared(run_dir):
    run_dir.mkdir()
    (run_dir / "backend.json").write_text(json.dumps({"backend": "direct", "model": "default", "dtype": None}))
    return run_dir


def test_an_ipi_that_stops_early_is_an_error_not_a_finished_run(tmp_path):
    """After an error in a force thread i-PI soft-exits with status 0: the step count tells."""
    from so3k_driver.sampling import run as sampling_run
    from so3k_driver.errors import UserError

    (tmp_path / "input.xml").write_text("<simulation><total_steps> 100 </total_steps></simulation>")
    (tmp_path / "RESTART").write_text("<simulation><step>40</step><total_steps>100</total_steps></simulation>")
    (tmp_path / "ipi.log").write_text(" @softexit.trigger:  SOFTEXIT CALLED FROM THREAD so3k direct PES: bad atoms\n")
    with pytest.raises(UserError, match=r"stopped at step 40 of 100.*bad atoms.*--resume"):
        sampling_run._check_finished(tmp_path, "input.xml")
    (tmp_path / "RESTART").write_text("<simulation><step>100</step><total_steps>100</total_steps></simulation>")
    sampling_run._check_finished(tmp_path, "input.xml")  # finished: no error
