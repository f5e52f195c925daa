"""The batched FIRE minimiser (evaluation/minimise.py) against ASE's optimiser on the same potential."""

import dataclasses
from pathlib import Path

import ase.io
import numpy as np
import pytest

from so3k_driver.errors import UserError
from so3k_driver.evaluation.minimise import FireSettings, minimise

DATA = Path(__file__).resolve().parents[2] / "so3k_driver" / "data"
FMAX = 0.01  # eV/Å: tight enough that two optimisers agree on the energy within 1e-3 eV


@pytest.fixture(scope="module")
def potential():
    from so3k_driver.evaluation.potential import Potential

    return Potential.load("default")


SETTINGS = FireSettings(fmax=FMAX, structures_per_call=2)  # one compiled call for every test here


@pytest.fixture(scope="module")
def starts():
    """Two Ac-Ala3-NHMe MD frames of the validation set (300-1200 K Langevin MD), Å."""
    md = [ase.io.read(DATA / "default_validation.xyz", index=i) for i in (0, 5)]
    return md[0].numbers, np.array([a.positions for a in md])


@pytest.fixture(scope="module")
def minimised(potential, starts):
    numbers, positions = starts
    return minimise(potential, numbers, positions, SETTINGS)


def ase_minimum(potential, numbers, positions):
    from ase import Atoms
    from ase.optimize import FIRE

    from so3k_driver.evaluation.ase_calculator import SO3kCalculator

    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.calc = SO3kCalculator(potential=potential)
    FIRE(atoms, logfile=None).run(fmax=FMAX, steps=3000)
    return atoms.get_potential_energy(), np.linalg.norm(atoms.get_forces(), axis=1).max()


def test_batched_fire_reaches_the_minima_ase_finds(potential, starts, minimised):
    numbers, positions = starts
    result = minimised
    assert result.converged.all() and (result.fmax < FMAX).all()
    # the returned positions really are minima of the potential (no pair lost by the Verlet lists)
    check = potential.evaluate(numbers, result.positions)
    np.testing.assert_allclose(check.energy, result.energy, atol=2e-4)
    assert (np.linalg.norm(check.forces, axis=-1).max(axis=1) < FMAX * 1.05).all()
    for b in range(len(positions)):
        energy, fmax = ase_minimum(potential, numbers, positions[b])
        assert fmax < FMAX
        assert abs(result.energy[b] - energy) < 1e-3, (b, result.energy[b], energy)
    assert result.steps.min() > 0 and result.force_evaluations >= result.steps.sum()


def test_a_converged_structure_stays_put(potential, starts, minimised):
    numbers, _ = starts
    again = minimise(potential, numbers, minimised.positions, SETTINGS)
    assert again.converged.all() and (again.steps == 0).all()
    np.testing.assert_array_equal(again.positions, minimised.positions)


def test_unconverged_structures_are_reported(potential, starts):
    numbers, positions = starts
    # three structures in two slots: a slot is refilled, and the last call runs half empty
    result = minimise(potential, numbers, np.concatenate([positions, positions[:1]]),
                      dataclasses.replace(SETTINGS, max_steps=3))
    assert not result.converged.any() and (result.steps == 3).all() and (result.fmax > FMAX).all()


@pytest.mark.parametrize("options, word", [({"fmax": 0.0}, "fmax"), ({"structures_per_call": 0}, "structures_per_call"),
                                            ({"skin": -1.0}, "skin")])
def test_bad_settings_name_the_value(options, word):
    with pytest.raises(UserError, match=word):
        FireSettings(**options)


def test_no_structures_is_a_user_error(potential, starts):
    numbers, _ = starts
    with pytest.raises(UserError, match="no structures"):
        minimise(potential, numbers, np.zeros((0, len(numbers), 3)))
