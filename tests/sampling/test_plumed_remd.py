"""The study as commands, end to end with real i-PI, PLUMED and so3k serve drivers (bundled model):
``so3k sample init`` + ``so3k sample run`` + ``so3k analyze`` for a short REMD + metadynamics of
Ac-Ala15-NHMe, then ``so3k sample run --steps`` extends it (outputs appended, PLUMED's hills kept
and continued)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from so3k_driver.ipi.properties import read_properties
from so3k_driver.sampling.analysis.replica_exchange import exchange_statistics
from so3k_driver.sampling.analysis.report import PLOTS
from so3k_driver.sampling.plumed_inputs import bundled_structure

SO3K = [sys.executable, "-m", "so3k_driver.cli"]
TEMPERATURES = [300.0, 367.4, 450.0]  # "300:450:3", geometric, K


def so3k(*arguments, timeout=200):
    return subprocess.run(SO3K + [str(a) for a in arguments], capture_output=True, text=True, timeout=timeout)


def hill_lines(path):
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def test_study_init_run_analyze_and_extend(tmp_path):
    pytest.importorskip("plumed")
    study = tmp_path / "study"
    init = so3k("sample", "init", bundled_structure("Ac-Ala15-NHMe_ext.xyz"), "--model", "ala3-xtb",
                "--temperatures", "300:450:3", "--metad", "end-to-end", "--steps", 30, "--out", study,
                "--timestep", 0.5, "--exchange-stride", 2, "--output-stride", 5, "--metad-pace", 10)
    assert init.returncode == 0, init.stderr
    settings = json.loads((study / "study.json").read_text())
    assert settings["temperatures"] == TEMPERATURES and settings["metad"]["cv"] == "end-to-end"
    for k, temperature in enumerate(TEMPERATURES):
        assert f"TEMP={temperature}" in (study / f"plumed_T{k}.dat").read_text()

    run = so3k("sample", "run", study)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "steps 0 → 30 of 30" in run.stdout
    assert "\r" not in run.stderr  # not a terminal: whole progress lines only
    assert json.loads((study / "so3k_driver.json").read_text())["lr_cutoff"] is None  # gas phase: all pairs
    swaps = (study / "sim.remd_idx").read_text().split("\n")
    assert len([line for line in swaps if line.strip()]) >= 1  # at least one accepted exchange
    first_hills = [hill_lines(study / f"HILLS.T{k}") for k in range(3)]
    assert all(len(hills) == 3 for hills in first_hills)  # 30 steps / PACE 10

    analysis = so3k("analyze", study)
    assert analysis.returncode == 0, analysis.stderr[-3000:]
    for plot in PLOTS:
        assert (study / "analysis" / plot).stat().st_size > 5000, plot
    summary = json.loads((study / "analysis" / "summary.json").read_text())
    assert [t["temperature_K"] for t in summary["temperatures"]] == TEMPERATURES
    assert all(abs(t["end_to_end_first_A"] - 54.66) < 0.5 for t in summary["temperatures"])  # Å, extended start
    exchanges = summary["replica_exchange"]
    assert exchanges["accepted_swaps"] >= 1 and exchanges["expected_attempts_per_pair"] == 15  # 30 steps / stride 2
    assert (study / "analysis" / "replica_exchange.png").stat().st_size > 5000
    # the swap file's walks are the temperatures i-PI reports for each configuration, frame by frame
    stats = exchange_statistics(study, TEMPERATURES, 30, 2)
    for k in range(3):
        properties = read_properties(study / f"T-{k}_sim.out")
        indices = stats.temperature_indices_at(properties["step"].astype(int))[:, k]
        np.testing.assert_allclose(np.array(TEMPERATURES)[indices], properties["ensemble_temperature"])

    # Extend to 50 steps: i-PI continues from RESTART, PLUMED restarts and appends hills.
    extended = so3k("sample", "run", study, "--steps", 50)
    assert extended.returncode == 0, extended.stderr[-3000:]
    assert "continuing" in extended.stderr and "steps 30 → 50 of 50" in extended.stdout
    assert (study / "resume_from_step_30.xml").exists()
    assert json.loads((study / "study.json").read_text())["steps"] == 50
    for k in range(3):
        hills = hill_lines(study / f"HILLS.T{k}")
        assert len(hills) == 5 and hills[:3] == first_hills[k]  # 50 / PACE 10, the first three untouched
        steps = [int(float(line.split()[0])) for line in (study / f"T-{k}_sim.out").read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        assert steps == sorted(set(steps)) and steps[-1] == 50  # one continuous, appended series

    finished = so3k("sample", "run", study)  # nothing left to run: one line, exit 2
    assert finished.returncode == 2 and "already at step 50" in finished.stderr
    assert len(finished.stderr.strip().splitlines()) == 1


def test_init_refuses_a_non_empty_folder_and_force_moves_it_aside(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    (study / "HILLS.T0").write_text("hills\n")
    command = ("sample", "init", bundled_structure("Ac-Ala3-NHMe_ext.xyz"), "--model", "ala3-xtb",
               "--temperatures", "300", "--metad", "backbone", "--steps", 10, "--out", study)
    refused = so3k(*command)
    assert refused.returncode == 2 and "not empty" in refused.stderr and "--force" in refused.stderr
    assert (study / "HILLS.T0").read_text() == "hills\n"
    moved = so3k(*command, "--force")
    assert moved.returncode == 0, moved.stderr
    assert (tmp_path / "study.bck.0" / "HILLS.T0").read_text() == "hills\n"
    assert "ARG=phi2,psi2" in (study / "plumed.dat").read_text()  # one temperature: plumed.dat, no REMD
    assert "<system_template>" not in (study / "input.xml").read_text()


def test_an_ipi_that_stops_early_is_an_error_not_a_finished_run(tmp_path):
    """After an error in a force thread i-PI soft-exits with status 0: the step count tells."""
    from so3k_driver.errors import UserError
    from so3k_driver.sampling import run as sampling_run

    (tmp_path / "RESTART").write_text("<simulation><step>40</step><total_steps>100</total_steps></simulation>")
    (tmp_path / "ipi.log").write_text(" @softexit.trigger:  SOFTEXIT CALLED FROM THREAD so3k direct PES: bad atoms\n")
    with pytest.raises(UserError, match=r"stopped at step 40 of 100.*bad atoms.*so3k sample run"):
        sampling_run.check_finished(tmp_path, 100)
    (tmp_path / "sim.restart").write_text("<simulation><step>100</step><total_steps>100</total_steps></simulation>")
    assert sampling_run.latest_restart(tmp_path).name == "sim.restart"  # the newer of the two
    sampling_run.check_finished(tmp_path, 100)  # finished: no error


def test_running_a_folder_that_is_no_study_is_one_line(tmp_path):
    result = so3k("sample", "run", tmp_path)
    assert result.returncode == 2 and "study.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
