"""Labelling with any model (batched) and sampling with i-PI: the labels are the model's own numbers."""

from __future__ import annotations

import subprocess
import sys

import ase.io
import numpy as np
import pytest
from physics_suite import bundled_molecule

from so3k_driver.evaluation.potential import Potential
from so3k_driver.training.labelling import ModelLabeller, label_with_model


def perturbed_frames(count=5, seed=0):
    from ase import Atoms

    numbers, positions = bundled_molecule()
    rng = np.random.default_rng(seed)
    return [Atoms(numbers=numbers, positions=positions + rng.normal(scale=0.05, size=positions.shape))
            for _ in range(count)]


def test_model_labels_are_the_models_numbers():
    frames = perturbed_frames()
    labelled = label_with_model(frames, ModelLabeller("ala3-xtb", batch_size=2), quiet=True)
    potential = Potential.load("ala3-xtb", dtype="float64")
    for frame, atoms in zip(frames, labelled):
        alone = potential.evaluate(frame.numbers, frame.positions)
        assert atoms.get_potential_energy() == alone.energy[0]  # batched or alone: the same numbers
        np.testing.assert_allclose(atoms.get_forces(), alone.forces[0], atol=1e-12)
        assert atoms.info["labeller"] == "ala3-xtb"


def so3k(*args, cwd):
    return subprocess.run([sys.executable, "-m", "so3k_driver.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.mark.slow
def test_label_samples_with_ipi_replica_exchange_and_labels(tmp_path):
    """Two temperatures, 15 MD steps each, frames every 5 steps after 5 steps of equilibration."""
    numbers, positions = bundled_molecule()
    ase.io.write(tmp_path / "ala3.xyz", perturbed_frames(1)[0])
    result = so3k("label", "ala3.xyz", "-o", "labels.extxyz", "--labeller", "ala3-xtb", "--sample-with", "ala3-xtb",
                  "--temperatures", "300,400", "--frames", "2", "--sample-every", "5", "--equilibration", "5",
                  "--workdir", "sampling", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frames = ase.io.read(tmp_path / "labels.extxyz", index=":")
    assert sorted((a.info["temperature_K"], a.info["md_step"]) for a in frames) == [
        (300.0, 10), (300.0, 15), (400.0, 10), (400.0, 15)]
    potential = Potential.load("ala3-xtb", dtype="float64")
    for atoms in frames:  # extxyz keeps about 12 significant digits
        assert atoms.get_potential_energy() == pytest.approx(potential.evaluate(atoms.numbers, atoms.positions).energy[0],
                                                             abs=1e-7)
    assert abs(frames[0].positions - positions).max() > 1e-3  # the sampler moved the atoms


def test_label_frames_as_they_are_and_bad_input(tmp_path):
    ase.io.write(tmp_path / "traj.extxyz", perturbed_frames(3))
    result = so3k("label", "traj.extxyz", "-o", "out.extxyz", "--labeller", "ala3-xtb", "--sample-with", "none",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(ase.io.read(tmp_path / "out.extxyz", index=":")) == 3
    missing = so3k("label", "nothere.xyz", "-o", "out.extxyz", "--labeller", "ala3-xtb", "--sample-with", "none",
                   cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0 and "not found" in missing.stderr


def test_label_samples_each_inputs_first_structure_with_an_xtb_method(tmp_path, monkeypatch):
    """The xTB sampling path from the command line (ASE's EMT stands in for tblite, which may be absent):
    Langevin MD from INPUT's first frame, then labels from a model."""
    from ase.calculators.emt import EMT

    from so3k_driver.cli.main import main
    from so3k_driver.training import labelling

    monkeypatch.setattr(labelling, "xtb_calculator", lambda method, charge=0.0: EMT())
    frames = perturbed_frames(2)
    frames[1].positions += 50.0  # a second frame far away: sampling must start from the first
    ase.io.write(tmp_path / "two.extxyz", frames)
    assert main(["label", str(tmp_path / "two.extxyz"), "-o", str(tmp_path / "out.extxyz"), "--labeller", "ala3-xtb",
                 "--sample-with", "GFN2-xTB", "--temperatures", "300", "--frames", "2", "--sample-every", "2",
                 "--equilibration", "2", "--timestep", "0.25"]) == 0
    sampled = ase.io.read(tmp_path / "out.extxyz", index=":")
    assert len(sampled) == 2 and all(atoms.info["temperature_K"] == 300 for atoms in sampled)
    assert all(np.abs(atoms.positions - frames[0].positions).max() < 1.0 for atoms in sampled)
