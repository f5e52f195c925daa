"""Training goes through the same force function as inference: SO3LR long-range pairs and charges,
periodic cells and the stress are trained exactly as they are served."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REFERENCE, SO3KRATES_RANDOM, SO3LR, periodic_test_system

from so3k_driver.training.batching import Capacities, PairCache, make_batch
from so3k_driver.training.data import Dataset


def dataset(numbers, frames, cells=None, pbc=None, total_charge=None) -> Dataset:
    S = len(frames)
    return Dataset([np.asarray(numbers)] * S, list(frames), np.zeros(S), [np.zeros_like(f) for f in frames],
                   cells=cells, pbc=pbc, total_charge=total_charge)


def training_predictions(potential, data: Dataset, lr_cutoff, batch_size: int):
    """What the trainer's loss sees for ``data``, evaluated with ``potential``'s parameters (float32)."""
    import jax.numpy as jnp

    from so3k_driver.model.energy import EnergyModel
    from so3k_driver.training.loss import predict

    config = potential.config
    pairs = PairCache.build(data, config.cutoff, config.needs_long_range_pairs, lr_cutoff)
    capacities = Capacities.for_data(batch_size, data.max_atoms, pairs.max_pairs, pairs.max_long_range_pairs)
    batch, labels = make_batch(data, pairs, list(range(len(data))), capacities)
    model = EnergyModel(config, lr_cutoff=lr_cutoff)
    params = {"params": potential.params["params"]}
    energies, forces, stress = predict(model, params, batch, jnp.asarray(labels.volume), bool(data.pbc.any()))
    n = len(data.numbers[0])
    return (np.asarray(energies)[:len(data)], np.asarray(forces)[:len(data) * n].reshape(len(data), n, 3),
            None if stress is None else np.asarray(stress)[:len(data)])


@pytest.mark.shared
@pytest.mark.slow
def test_so3lr_training_sees_what_the_potential_serves():
    """Long-range pairs (12 Å) and a total charge: the trainer's batch gives the Potential's numbers."""
    import ase.io

    from so3k_driver.evaluation.potential import Potential

    atoms = ase.io.read(REFERENCE / "ala3.xyz")
    rng = np.random.default_rng(0)
    frames = np.stack([atoms.positions + rng.normal(scale=0.05, size=atoms.positions.shape) for _ in range(3)])
    potential = Potential.load(SO3LR, dtype="float32", lr_cutoff=12.0)
    charge = np.array([0.0, 1.0, -1.0])
    served = potential.evaluate(atoms.numbers, frames, total_charge=charge)
    energies, forces, _ = training_predictions(potential, dataset(atoms.numbers, frames, total_charge=charge),
                                               12.0, batch_size=4)
    assert np.ptp(served.energy) > 1e-2  # the charges change the energy: the test is not blind to them
    np.testing.assert_allclose(energies, served.energy, rtol=0, atol=2e-4 * len(atoms))
    np.testing.assert_allclose(forces, served.forces, atol=5e-4)


@pytest.mark.shared
@pytest.mark.slow
def test_periodic_training_sees_the_potentials_stress():
    from so3k_driver.evaluation.potential import Potential

    numbers, positions, cell = periodic_test_system()
    rng = np.random.default_rng(1)
    frames = np.stack([positions + rng.normal(scale=0.05, size=positions.shape) for _ in range(2)])
    potential = Potential.load(SO3KRATES_RANDOM, dtype="float32")
    served = potential.evaluate(numbers, frames, cell)
    data = dataset(numbers, frames, cells=np.stack([cell, cell]), pbc=np.ones((2, 3), bool))
    energies, forces, stress = training_predictions(potential, data, None, batch_size=2)
    assert np.abs(served.stress).max() > 3e-5  # random weights: small, but far above float32 noise
    np.testing.assert_allclose(energies, served.energy, atol=1e-5)
    np.testing.assert_allclose(forces, served.forces, atol=1e-6)
    np.testing.assert_allclose(stress, served.stress, atol=1e-7)


def test_stress_labels_are_trained(tmp_path):
    """Strained, rattled fcc Cu labelled by ASE's EMT (energy, forces, stress). Trained on the stress
    alone, the training stress error falls (an untrained model predicts ~0.001 eV/Å³
    against labels of ~0.02), and the exported model serves the stress the trainer predicts."""
    import json

    import ase.io
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.training.settings import TrainSettings
    from so3k_driver.training.trainer import Trainer

    rng = np.random.default_rng(2)
    frames = []
    for _ in range(6):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 1, 1)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(scale=0.02, size=(3, 3))), scale_atoms=True)
        atoms.rattle(0.05, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        atoms.get_stress()
        frames.append(atoms)
    ase.io.write(tmp_path / "cu.extxyz", frames)
    settings = TrainSettings(data=str(tmp_path / "cu.extxyz"), num_train=4, num_valid=2, batch_size=4, epochs=60, eval_every=30,
                             optimizer="adam", learning_rate=1e-2, energy_weight=0.0, force_weight=0.0, stress_weight=1.0,
                             ema_decay=0.0, patience=None, checkpoint_every=60, output_dir=str(tmp_path / "run"),
                             progress=False, plot=False,
                             model={"num_layers": 1, "num_features": 12, "num_heads": 2, "degrees": [1, 2],
                                    "energy_regression_dim": 12, "num_radial": 8, "cutoff": 4.0})
    trainer = Trainer(settings, log=lambda *_: None)
    result = trainer.train()
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train_stress_mse"] < 0.8 * rows[0]["train_stress_mse"]  # 0.70x measured: the term is trained
    assert "stress_mae_eV_per_A3" in result["validation"]
    student = Potential.load(result["model"], dtype="float32")
    valid = trainer.valid_data
    served = student.evaluate(valid.numbers[0], valid.positions[0], valid.cells[0])
    state = result["state"]
    best = state["best"] if np.isfinite(float(state["best_loss"])) else state["ema"]
    _, _, predicted, _ = trainer.predict(best, valid, trainer.p.valid_pairs)
    np.testing.assert_allclose(served.stress[0], predicted[0], atol=1e-6)


def test_stress_weight_without_stress_labels_is_refused(tmp_path):
    from so3k_driver.training.settings import TrainSettings
    from so3k_driver.training.trainer import Trainer

    ethanol = REFERENCE.parent / "data" / "md17_ethanol.npz"
    if not ethanol.exists():
        pytest.skip("needs ../shared/data")
    settings = TrainSettings(data=str(ethanol), energy_unit="kcal/mol", num_train=8, num_valid=4,
                             stress_weight=1.0, output_dir=str(tmp_path), progress=False, plot=False)
    with pytest.raises(ValueError, match="stress_weight is 1.0 but no training structure"):
        Trainer(settings)
