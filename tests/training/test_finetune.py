"""Fine-tuning the published SO3LR: a zero learning rate keeps the authors' reference numbers, a positive
one changes them, and only the chosen layers move."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REFERENCE, SO3LR

from so3k_driver.io.model_files import flatten, load_model
from so3k_driver.training.settings import TrainSettings
from so3k_driver.training.trainer import train

pytestmark = pytest.mark.shared
MD22 = REFERENCE.parent / "data" / "md22_Ac-Ala3-NHMe_5frames.xyz"


def finetune(tmp_path, name, data=MD22, energy_unit="kcal/mol", **options):
    settings = TrainSettings(data=str(data), energy_unit=energy_unit, num_train=4, num_valid=1, batch_size=4,
                             epochs=1, init_from=SO3LR, output_dir=str(tmp_path / name), progress=False,
                             plot=False, patience=None, **options)
    return train(settings, log=lambda *_: None)


def reference_errors(model_path):
    from so3k_driver.evaluation.potential import Potential

    ref = np.load(REFERENCE / "so3lr_ala3_float32.npz")
    result = Potential.load(str(model_path), dtype="float32").evaluate(ref["numbers"], ref["positions"])
    n = len(ref["numbers"])
    return abs(result.energy[0] - float(ref["energy"])) / n, np.abs(result.forces[0] - ref["forces"]).max()


def so3lr_labelled_frames(path):
    """The MD22 geometries labelled by SO3LR itself (float64, 12 Å long-range cutoff as in training)."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from so3k_driver.evaluation.potential import Potential

    so3lr = Potential.load(SO3LR, dtype="float64")
    frames = ase.io.read(MD22, index=":")
    for atoms in frames:
        result = so3lr.evaluate(atoms.numbers, atoms.positions)
        atoms.calc = SinglePointCalculator(atoms, energy=result.energy[0], forces=result.forces[0])
    ase.io.write(path, frames)
    return path


@pytest.mark.slow
def test_zero_learning_rate_keeps_the_reference_numbers(tmp_path):
    data = so3lr_labelled_frames(tmp_path / "so3lr_labels.extxyz")
    result = finetune(tmp_path, "lr0", data=data, energy_unit="eV", learning_rate=0.0)
    energy_per_atom, forces = reference_errors(result["model"])
    assert energy_per_atom <= 1e-4 and forces <= 2e-4  # the tolerances of the float32 reference test
    before = flatten(load_model(SO3LR)[1])
    after = flatten(load_model(result["model"])[1])
    for key in before:  # only the energy offsets may move, by the (vanishing) fitted shifts
        atol = 1e-4 if key == "params/observables_0/energy_offset" else 0.0
        np.testing.assert_allclose(after[key], np.asarray(before[key], np.float32), rtol=0, atol=atol, err_msg=key)


@pytest.mark.slow
def test_training_the_last_layer_changes_only_it(tmp_path):
    result = finetune(tmp_path, "last", learning_rate=1e-3, train_last_layers=1)
    _, forces = reference_errors(result["model"])
    assert forces > 1e-3  # the model moved towards the PBE+MBD labels
    before = flatten(load_model(SO3LR)[1])
    after = flatten(load_model(result["model"])[1])
    moved = {k.split("/")[1] for k in before if not np.array_equal(np.asarray(before[k], np.float32), after[k])}
    assert "layers_2" in moved
    assert moved <= {"layers_2", "observables_0", "observables_2"}
    assert not any(k.startswith(("layers_0", "layers_1", "feature_embeddings")) for k in moved)


def test_the_starting_models_energies_in_batches_equal_one_call_per_structure():
    """The fitted offsets start from the starting model's energies on the data, which are evaluated in
    batches of same-size structures: sizes interleaved, a short last batch, charged structures."""
    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.training.data import Dataset, load_dataset
    from so3k_driver.training.trainer import _model_energies

    ala3 = load_dataset(MD22, "kcal/mol")
    fragment = [(n[:12], x[:12]) for n, x in zip(ala3.numbers, ala3.positions)]  # a 12-atom piece of each frame
    numbers = [ala3.numbers[0], fragment[0][0], ala3.numbers[1], ala3.numbers[2], fragment[3][0]]
    positions = [ala3.positions[0], fragment[0][1], ala3.positions[1], ala3.positions[2], fragment[3][1]]
    data = Dataset(numbers, positions, np.zeros(5), [np.zeros_like(x) for x in positions],
                   total_charge=np.array([0.0, 1.0, 0.0, -1.0, 0.0]))
    settings = TrainSettings(data=str(MD22), init_from=SO3LR, progress=False)
    config, params = load_model(SO3LR)[:2]
    batched = _model_energies(config, params, data, settings, batch_size=2)
    so3lr = Potential(config, params, dtype="float64")
    # each alone, padded to the batch's size so that no shape is compiled twice (padding is masked)
    one_by_one = [so3lr.evaluate(n, x, total_charge=q, pad_to=2).energy[0]
                  for n, x, q in zip(numbers, positions, data.total_charge)]
    np.testing.assert_allclose(batched, one_by_one, rtol=0, atol=1e-9)
    assert len(set(np.round(batched, 3))) == 5


def test_a_resumed_fine_tune_reads_its_shifts_back_instead_of_evaluating_the_starting_model(tmp_path, monkeypatch):
    from so3k_driver.training import trainer
    from so3k_driver.training.data import Dataset

    evaluations = []

    def starting_model_energies(config, params, data, settings):
        evaluations.append(settings.init_from)
        return np.array([-1.0, -2.5, -0.5]) * (2.0 if "other" in settings.init_from else 1.0)

    monkeypatch.setattr(trainer, "_model_energies", starting_model_energies)
    numbers = [np.array([1, 6]), np.array([1, 1, 6]), np.array([6, 6])]
    data = Dataset(numbers, [np.zeros((len(n), 3)) for n in numbers], np.array([-10.0, -11.0, -20.0]),
                   [np.zeros((len(n), 3)) for n in numbers])
    settings = TrainSettings(data="frames.extxyz", init_from="start.so3k", output_dir=str(tmp_path))
    first = trainer._fine_tuning_shifts(settings, None, None, data)
    again = trainer._fine_tuning_shifts(settings, None, None, data)
    np.testing.assert_array_equal(again, first)
    assert evaluations == ["start.so3k"]
    # what the shifts depend on changed, or no resume: evaluated again
    other = trainer._fine_tuning_shifts(TrainSettings(data="frames.extxyz", init_from="other.so3k",
                                                      output_dir=str(tmp_path)), None, None, data)
    assert not np.allclose(other, first)
    trainer._fine_tuning_shifts(TrainSettings(data="frames.extxyz", init_from="other.so3k", output_dir=str(tmp_path),
                                              resume=False), None, None, data)
    changed = Dataset(numbers, data.positions, data.energies + 0.1, data.forces)
    trainer._fine_tuning_shifts(TrainSettings(data="frames.extxyz", init_from="other.so3k",
                                              output_dir=str(tmp_path)), None, None, changed)
    assert evaluations == ["start.so3k", "other.so3k", "other.so3k", "other.so3k"]
