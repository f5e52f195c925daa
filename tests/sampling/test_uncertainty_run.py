"""A committee study records its uncertainty through i-PI, and ``so3k analyze`` plots and flags it.

One real run through the command line: ``so3k sample init`` + ``so3k sample run`` (REMD at 300 and
400 K, 20 steps in two pieces, frames every 2, socket backend) with a 2-member committee of tiny
random models.
What i-PI wrote is compared with the committee's spread recomputed by Potential on the written frames.
The run costs about a minute of CPU (twice i-PI, a driver, compilation): those tests are marked slow.
"""

import json
import shutil

import numpy as np
import pytest
from conftest import REPO, tiny_model_config

from so3k_driver.cli.main import main as so3k
from so3k_driver.evaluation.potential import Potential
from so3k_driver.ipi import recovery
from so3k_driver.sampling.analysis import ipi_outputs, uncertainty
from so3k_driver.units import BOHR_IN_ANGSTROM, HARTREE_IN_EV

pytest.importorskip("ipi", reason="i-PI is not installed (pip install ipi)")
STEPS, STRIDE, TEMPERATURES = 20, 2, (300.0, 400.0)
RECORDS = STEPS // STRIDE + 1  # step 0 included


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(one member, the committee of two) as .so3k files."""
    from so3k_driver.io.model_files import save_committee, save_model
    from so3k_driver.model.forces import initial_parameters

    folder = tmp_path_factory.mktemp("models")
    config = tiny_model_config()
    members = [save_model(folder / f"m{seed}.so3k", config, initial_parameters(config, seed)) for seed in (0, 1)]
    return members[0], save_committee(folder / "committee.so3k", [str(m) for m in members])


@pytest.fixture(scope="module")
def committee_run(tmp_path_factory, models):
    run_dir = tmp_path_factory.mktemp("committee") / "study"
    assert so3k(["sample", "init", str(REPO / "ipi_inputs" / "ala3.xyz"), "--model", str(models[1]),
                 "--temperatures", ",".join(f"{t:g}" for t in TEMPERATURES), "--steps", str(STEPS // 2), "--out",
                 str(run_dir), "--metad", "none", "--output-stride", str(STRIDE), "--exchange-stride", "4"]) == 0
    assert so3k(["sample", "run", str(run_dir), "--quiet"]) == 0
    # the second half continues from RESTART: the outputs are cut back to its step, i-PI appends
    assert so3k(["sample", "run", str(run_dir), "--quiet", "--steps", str(STEPS)]) == 0
    return run_dir


@pytest.mark.slow
def test_recorded_spread_is_the_committees_spread(committee_run, models):
    """Per system: one record per output stride at the properties' steps, and the energy spread (eV)
    and per-atom force spreads (eV/Å) equal Potential's on the frames of the trajectory (float32)."""
    potential = Potential.load(str(models[1]))
    for k in range(len(TEMPERATURES)):
        steps, energy, forces = uncertainty.read_uncertainty(committee_run / f"T-{k}_sim.uncertainty_0")
        properties = ipi_outputs.read_properties(committee_run / f"T-{k}_sim.out")
        symbols, frames = ipi_outputs.read_xyz_frames(committee_run / f"T-{k}_sim.pos_0.xyz")
        text = (committee_run / f"T-{k}_sim.uncertainty_0").read_text()
        assert text.count("#EXTRAS(") == RECORDS  # each step once, across the resume
        np.testing.assert_array_equal(steps, np.arange(0, STEPS + 1, STRIDE))
        np.testing.assert_array_equal(steps, properties["step"])
        assert forces.shape == (RECORDS, len(symbols)) and len(frames) == RECORDS
        from ase.data import atomic_numbers

        numbers = np.broadcast_to([atomic_numbers[s] for s in symbols], (len(frames), len(symbols)))
        ours = potential.evaluate(numbers, frames).extras
        # i-PI writes the extras with 9 digits, the frames with 6 (±5e-6 Å): float32-level agreement
        np.testing.assert_allclose(energy * HARTREE_IN_EV, ours["energy_uncertainty"], rtol=1e-5)
        np.testing.assert_allclose(forces * HARTREE_IN_EV / BOHR_IN_ANGSTROM, ours["force_uncertainty"],
                                   rtol=1e-3, atol=1e-6)
        assert ours["force_uncertainty"].max() > 1e-3  # eV/Å: the members do disagree


@pytest.mark.slow
def test_analyze_plots_and_flags_frames_beyond_the_threshold(committee_run, tmp_path):
    replicas = uncertainty.replica_uncertainties(committee_run)
    assert [r.temperature for r in replicas] == list(TEMPERATURES)
    assert all(len(r.time) == RECORDS for r in replicas)  # each temperature has a frame at each output step
    np.testing.assert_allclose(replicas[0].time, np.arange(RECORDS) * STRIDE * 0.5e-3)  # ps, 0.5 fs steps
    forces = np.concatenate([r.force for r in replicas])
    threshold = float(np.median(forces))  # meV/Å, between the smallest and the largest recorded spread
    assert forces.min() < threshold < forces.max()
    expected = [int(np.sum(r.force > threshold)) for r in replicas]
    assert 0 < sum(expected) < 2 * RECORDS

    assert so3k(["analyze", str(committee_run), "--out", str(tmp_path), "--uncertainty-threshold", str(threshold)]) == 0
    assert (tmp_path / uncertainty.PLOT).stat().st_size > 10_000
    numbers = json.loads((tmp_path / "summary.json").read_text())["committee_uncertainty"]
    assert numbers["threshold_meV_per_A"] == pytest.approx(threshold)
    rows = numbers["temperatures"]
    assert [row["flagged_frames"] for row in rows] == expected
    assert [row["force_spread_max_meV_per_A"] for row in rows] == pytest.approx([r.force.max() for r in replicas])
    for row, replica in zip(rows, replicas):
        listed = [frame["force_spread_meV_per_A"] for frame in row["most_uncertain_flagged"]]
        assert len(listed) == row["flagged_frames"] and all(value > threshold for value in listed)
    # energy spread per atom (meV/atom) from the file itself: spread (hartree) / atoms
    steps, energy, per_atom = uncertainty.read_uncertainty(committee_run / "T-0_sim.uncertainty_0")
    first_300 = replicas[0].energy[replicas[0].step == 0]
    assert float(first_300[0]) == pytest.approx(energy[0] * HARTREE_IN_EV * 1e3 / per_atom.shape[1])
    markdown = (tmp_path / "summary.md").read_text()
    assert "## Committee uncertainty" in markdown and f"{threshold:g} meV/Å are flagged" in markdown


@pytest.mark.slow
def test_a_resume_keeps_the_records_up_to_the_checkpoint(committee_run, tmp_path):
    """Cutting the outputs back to the step-0 checkpoint leaves the step-0 record of each system (it
    emptied the extras files before recovery knew their layout)."""
    copy = tmp_path / "copy"
    shutil.copytree(committee_run, copy)
    checkpoint = copy / "sim.restart_0"
    assert recovery.ipi_xml.step(str(checkpoint)) == 0
    changed = recovery.truncate_outputs(str(copy), str(checkpoint))
    for k in range(len(TEMPERATURES)):
        assert str(copy / f"T-{k}_sim.uncertainty_0") in changed
        steps, energy, forces = uncertainty.read_uncertainty(copy / f"T-{k}_sim.uncertainty_0")
        original = uncertainty.read_uncertainty(committee_run / f"T-{k}_sim.uncertainty_0")
        np.testing.assert_array_equal(steps, [0])
        np.testing.assert_array_equal(forces, original[2][:1])


def test_a_cut_record_is_dropped_and_a_repeated_step_keeps_its_last(tmp_path):
    header = " #EXTRAS(energy_uncertainty,force_uncertainty)# Step: {} \n"
    path = tmp_path / "sim.uncertainty_0"
    path.write_text(header.format(0) + " 1.0 2.0 3.0\n" + header.format(2) + " 4.0 5.0 6.0\n"
                    + header.format(2) + " 7.0 8.0 9.0\n" + header.format(4) + " 1.0 2.0")
    steps, energy, forces = uncertainty.read_uncertainty(path)
    np.testing.assert_array_equal(steps, [0, 2])
    np.testing.assert_array_equal(energy, [1.0, 7.0])
    np.testing.assert_array_equal(forces, [[2.0, 3.0], [8.0, 9.0]])
    assert recovery.truncate_extras(str(path), 2)
    assert path.read_text() == (header.format(0) + " 1.0 2.0 3.0\n" + header.format(2) + " 4.0 5.0 6.0\n"
                                + header.format(2) + " 7.0 8.0 9.0\n")


def test_only_a_committee_study_records_its_uncertainty(tmp_path, models):
    """so3k sample init adds the extras trajectory for a committee model, at the output stride, and not for one model."""
    for name, model in (("single", models[0]), ("committee", models[1])):
        assert so3k(["sample", "init", str(REPO / "ipi_inputs" / "ala3.xyz"), "--model", str(model),
                     "--temperatures", "300,400", "--steps", "10", "--out", str(tmp_path / name), "--metad", "none",
                     "--output-stride", "5"]) == 0
    assert "extras" not in (tmp_path / "single" / "input.xml").read_text()
    assert ("<trajectory filename='uncertainty' stride='5' extra_type='energy_uncertainty,force_uncertainty'> "
            "extras </trajectory>") in (tmp_path / "committee" / "input.xml").read_text()


@pytest.mark.slow
def test_a_run_without_uncertainty_output_gets_no_uncertainty_analysis(tmp_path, committee_run):
    copy = tmp_path / "copy"
    shutil.copytree(committee_run, copy, ignore=shutil.ignore_patterns("*.uncertainty_0", "analysis"))
    assert uncertainty.replica_uncertainties(copy) == []
    assert so3k(["analyze", str(copy)]) == 0
    assert not (copy / "analysis" / uncertainty.PLOT).exists()
    assert json.loads((copy / "analysis" / "summary.json").read_text())["committee_uncertainty"] is None


def test_threshold_must_be_positive(tmp_path, capsys):
    assert so3k(["analyze", str(tmp_path), "--uncertainty-threshold", "0"]) == 2
    assert "meV/Å" in capsys.readouterr().err
