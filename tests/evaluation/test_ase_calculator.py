"""The ASE calculator gives the potential's numbers and runs ASE dynamics."""

import numpy as np
import pytest

from conftest import SO3KRATES_RANDOM, periodic_test_system

pytestmark = pytest.mark.shared


def test_calculator_matches_potential_and_stress_voigt(so3krates64):
    from ase import Atoms
    from so3k_driver.evaluation.ase_calculator import SO3kCalculator

    numbers, positions, cell = periodic_test_system()
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
    atoms.calc = SO3kCalculator(potential=so3krates64)
    direct = so3krates64.evaluate(numbers, positions, cell)
    assert atoms.get_potential_energy() == pytest.approx(direct.energy[0], abs=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), direct.forces[0], atol=1e-12)
    s = direct.stress[0]
    np.testing.assert_allclose(atoms.get_stress(), [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def test_calculator_runs_velocity_verlet(ala3_reference):
    from ase import Atoms, units
    from ase.md.verlet import VelocityVerlet
    from so3k_driver.evaluation.ase_calculator import SO3kCalculator

    atoms = Atoms(numbers=ala3_reference["numbers"], positions=ala3_reference["positions"])
    atoms.calc = SO3kCalculator(SO3KRATES_RANDOM, dtype="float64")
    atoms.set_momenta(np.random.default_rng(0).normal(scale=0.3, size=(len(atoms), 3)))
    start = atoms.get_total_energy()
    VelocityVerlet(atoms, 0.25 * units.fs).run(20)
    assert abs(atoms.get_total_energy() - start) < 1e-4
