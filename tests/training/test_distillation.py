"""Distillation of an SO3LR-type teacher: its partial charges and Hirshfeld ratios travel with the labels
and train a student's charge and dispersion heads; a short distillation moves the student towards the teacher."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from conftest import SO3LR
from physics_suite import bundled_molecule

from so3k_driver.evaluation.potential import Potential
from so3k_driver.training.data import load_dataset
from so3k_driver.training.labelling import ModelLabeller, label_with_model
from so3k_driver.training.settings import TrainSettings
from so3k_driver.training.trainer import train

pytestmark = pytest.mark.shared  # the teacher is the SO3LR of ../shared/reference

STUDENT = {"num_layers": 1, "num_features": 16, "num_heads": 2, "degrees": [1, 2], "energy_regression_dim": 16,
           "num_radial": 8, "electrostatics": True, "dispersion": True, "zbl_repulsion": True}


def perturbed_frames(count, seed=0, scale=0.05):
    from ase import Atoms

    numbers, positions = bundled_molecule()
    rng = np.random.default_rng(seed)
    return [Atoms(numbers=numbers, positions=positions + rng.normal(scale=scale, size=positions.shape))
            for _ in range(count)]


@pytest.fixture(scope="module")
def teacher_labels(tmp_path_factory):
    """16 perturbed Ac-Ala3-NHMe frames labelled by SO3LR (float64, all pairs), written as extxyz."""
    frames = perturbed_frames(16)
    labelled = label_with_model(frames, ModelLabeller(SO3LR, batch_size=8), quiet=True)
    path = tmp_path_factory.mktemp("teacher") / "labels.extxyz"
    ase.io.write(path, labelled, format="extxyz")
    return frames, labelled, path


def test_teacher_charges_and_hirshfeld_ratios_are_written_and_read_back(teacher_labels):
    frames, labelled, path = teacher_labels
    teacher = Potential.load(SO3LR, dtype="float64", lr_cutoff=None)
    alone = teacher.evaluate(frames[3].numbers, frames[3].positions)
    np.testing.assert_allclose(labelled[3].arrays["partial_charges"], alone.extras["charges"][0], atol=1e-12)
    np.testing.assert_allclose(labelled[3].arrays["hirshfeld_ratios"], alone.extras["hirshfeld_ratios"][0], atol=1e-12)
    assert abs(labelled[3].arrays["partial_charges"].sum()) < 1e-8  # neutral molecule
    data = load_dataset(path)
    assert sorted(data.atom_targets) == ["hirshfeld_ratios", "partial_charges"]
    np.testing.assert_allclose(data.atom_targets["partial_charges"][3], alone.extras["charges"][0], atol=1e-7)  # extxyz keeps ~8 digits
    subset = data.subset([3, 5])
    np.testing.assert_array_equal(subset.atom_targets["hirshfeld_ratios"][0], data.atom_targets["hirshfeld_ratios"][3])


def _student_errors(model_path, labelled):
    student = Potential.load(str(model_path), dtype="float64", lr_cutoff=None)
    numbers = labelled[0].numbers
    result = student.evaluate(numbers, np.stack([a.positions for a in labelled]))
    forces = np.stack([a.get_forces() for a in labelled])
    charges = np.stack([a.arrays["partial_charges"] for a in labelled])
    return np.abs(result.forces - forces).mean(), np.abs(result.extras["charges"] - charges).mean()


@pytest.mark.slow
def test_short_distillation_moves_the_student_towards_the_teacher(teacher_labels, tmp_path):
    _, labelled, path = teacher_labels

    def run(epochs, out):
        s = TrainSettings(data=str(path), num_train=12, num_valid=4, batch_size=4, epochs=epochs, learning_rate=5e-3,
                          model=STUDENT, lr_cutoff=None, charge_weight=10.0, hirshfeld_weight=1.0, ema_decay=0.0,
                          output_dir=str(out), progress=False, plot=False)
        train(s, log=lambda *_: None)
        return out / "model.so3k"

    before = _student_errors(run(0, tmp_path / "untrained"), labelled)
    after = _student_errors(run(15, tmp_path / "trained"), labelled)
    rows = [json.loads(r) for r in (tmp_path / "trained" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train_partial_charges_mse"] < rows[0]["train_partial_charges_mse"]
    last = rows[-1]  # validation scores the trained targets too, and its loss is the training loss's sum
    assert last["valid_partial_charges_rmse"] < rows[0]["valid_partial_charges_rmse"]
    expected = (0.01 * last["valid_energy_rmse_eV"] ** 2 + last["valid_forces_rmse_eV_per_A"] ** 2
                + 10.0 * last["valid_partial_charges_rmse"] ** 2 + 1.0 * last["valid_hirshfeld_ratios_rmse"] ** 2)
    assert last["valid_loss"] == pytest.approx(expected, rel=1e-9)
    assert after[0] < before[0]  # forces closer to the teacher's
    assert after[1] < 0.5 * before[1]  # charges closer to the teacher's


def test_charge_weight_without_charge_labels_is_refused(tmp_path):
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = perturbed_frames(6)
    for atoms in frames:  # energies and forces, no charges
        atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((len(atoms), 3)))
    ase.io.write(tmp_path / "plain.extxyz", frames, format="extxyz")
    s = TrainSettings(data=str(tmp_path / "plain.extxyz"), num_train=4, num_valid=2, epochs=1, model=STUDENT,
                      lr_cutoff=None, charge_weight=1.0, output_dir=str(tmp_path / "out"), progress=False, plot=False)
    with pytest.raises(ValueError, match="partial_charges"):
        train(s, log=lambda *_: None)
