"""Committees: M models of one architecture in one file, evaluated in one vectorised call; the mean
and the members' spread, served to i-PI in the extras layout its <ffcommittee> reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import periodic_test_system, tiny_model_config
from physics_suite import bundled_molecule

from so3k_driver.evaluation.potential import Potential
from so3k_driver.model.config import ModelConfig
from so3k_driver.model.forces import initial_parameters, stack_parameters

CONFIG = tiny_model_config()


@pytest.fixture(scope="module")
def members():
    return [initial_parameters(CONFIG, seed) for seed in (0, 1, 2)]


@pytest.fixture(scope="module")
def committee(members):
    return Potential(CONFIG, stack_parameters(members), dtype="float64", committee_size=len(members))


@pytest.fixture(scope="module")
def singles(members):
    return [Potential(CONFIG, p, dtype="float64") for p in members]


def test_committee_mean_and_members_equal_separate_models(committee, singles):
    numbers, positions = bundled_molecule()
    batch = np.stack([positions, positions + 0.02])
    result = committee.evaluate(numbers, batch)
    alone = [s.evaluate(numbers, batch) for s in singles]
    energies = np.stack([a.energy for a in alone], axis=1)  # (B, M)
    forces = np.stack([a.forces for a in alone], axis=2)  # (B, N, M, 3)
    assert np.ptp(energies, axis=1).min() > 1e-4  # the members differ: the spread is not trivially zero
    np.testing.assert_allclose(result.extras["committee_energies"], energies, atol=1e-10)
    np.testing.assert_allclose(result.extras["committee_forces"], forces, atol=1e-10)
    np.testing.assert_allclose(result.energy, energies.mean(axis=1), atol=1e-10)
    np.testing.assert_allclose(result.forces, forces.mean(axis=2), atol=1e-10)
    np.testing.assert_allclose(result.extras["energy_uncertainty"], energies.std(axis=1, ddof=1), atol=1e-10)
    expected = np.sqrt(forces.var(axis=2, ddof=1).sum(axis=-1))
    np.testing.assert_allclose(result.extras["force_uncertainty"], expected, atol=1e-10)


def test_committee_virials_in_a_periodic_cell(committee, singles):
    numbers, positions, cell = periodic_test_system()
    result = committee.evaluate(numbers, positions, cell)
    alone = [s.evaluate(numbers, positions, cell) for s in singles]
    np.testing.assert_allclose(result.extras["committee_virials"][0], np.stack([a.virial[0] for a in alone]), atol=1e-12)
    np.testing.assert_allclose(result.stress[0], np.mean([a.stress[0] for a in alone], axis=0), atol=1e-12)


def test_committee_file_round_trip(tmp_path, members, committee):
    from so3k_driver.errors import ModelFileError
    from so3k_driver.io.model_files import save_committee, save_model

    paths = [save_model(tmp_path / f"m{i}.so3k", CONFIG, p) for i, p in enumerate(members)]
    path = save_committee(tmp_path / "committee.so3k", [str(p) for p in paths])
    loaded = Potential.load(str(path), dtype="float64")
    assert loaded.committee_size == 3
    numbers, positions = bundled_molecule()
    np.testing.assert_allclose(loaded.evaluate(numbers, positions).energy,
                               committee.evaluate(numbers, positions).energy, atol=1e-6)  # stored as float32
    narrower = ModelConfig(**{**CONFIG.to_dict(), "num_features": 8, "energy_regression_dim": 8})
    other = save_model(tmp_path / "other.so3k", narrower, initial_parameters(narrower, 0))
    with pytest.raises(ModelFileError, match="share one configuration"):
        save_committee(tmp_path / "bad.so3k", [str(paths[0]), str(other)])


def test_committee_extras_on_the_wire(committee):
    from so3k_driver.ipi.compute import make_compute
    from so3k_driver.units import ANGSTROM_IN_BOHR, EV_IN_HARTREE

    numbers, positions = bundled_molecule()
    compute = make_compute(committee, numbers)
    _, _, _, extras = compute(np.eye(3)[None] * 50, positions[None] * ANGSTROM_IN_BOHR)
    record = json.loads(extras[0])
    reference = committee.evaluate(numbers, positions)
    np.testing.assert_allclose(record["committee_pot"], reference.extras["committee_energies"][0] * EV_IN_HARTREE,
                               rtol=1e-12)
    assert np.shape(record["committee_force"]) == (3, 3 * len(numbers))
