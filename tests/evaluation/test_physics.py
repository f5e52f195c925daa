"""The shared physics suite (tests/physics_suite.py) applied to every model kind we ship or load:
the paper-size SO3krates (random reference weights), the published SO3LR, and both bundled models."""

import numpy as np
import pytest
from conftest import SO3KRATES_RANDOM, SO3LR
from physics_suite import PotentialPhysicsSuite


@pytest.mark.shared
class TestPaperSO3krates(PotentialPhysicsSuite):
    """Random weights give small forces (~1e-3 eV/Å): the tolerances scale with them."""

    spec = SO3KRATES_RANDOM
    invariance_atol = 1e-10
    finite_difference_atol = 1e-8
    stress_atol = 1e-8
    float32_energy_per_atom = 2.5e-7
    float32_forces = 1e-6


def water_box():
    """Four rotated waters in a 6 Å triclinic cell (Å): charges and dispersion across images."""
    from ase.build import molecule

    rng = np.random.default_rng(0)
    cell = np.array([[6.2, 0.0, 0.0], [0.4, 6.0, 0.0], [0.3, -0.2, 6.4]])
    numbers, positions = [], []
    for centre in ([1.5, 1.5, 1.5], [4.5, 1.6, 4.4], [1.7, 4.5, 4.6], [4.6, 4.4, 1.4]):
        water = molecule("H2O")
        water.rotate(rng.uniform(0, 360), rng.normal(size=3))
        numbers.extend(water.numbers)
        positions.extend(water.positions + centre)
    return np.array(numbers), np.array(positions), cell


class SO3LRTypeSuite(PotentialPhysicsSuite):
    """Models with SO3LR's long-range terms: gas phase with SO3LR's default 12 Å long-range cutoff;
    periodic checks with 8 Å (beyond half the cell)."""

    options = {"lr_cutoff": 12.0}
    periodic_options = {"lr_cutoff": 8.0}
    invariance_atol = 1e-9
    finite_difference_atol = 1e-6
    stress_atol = 1e-7
    float32_energy_per_atom = 1e-5
    float32_forces = 2e-4

    def periodic_system(self):
        return water_box()


@pytest.mark.shared
class TestSO3LR(SO3LRTypeSuite):
    spec = SO3LR


class TestBundledStudent(SO3LRTypeSuite):
    """The bundled default, the SO3LR student (needs nothing from ../shared)."""

    spec = "default"


class TestBundledAla3Xtb(PotentialPhysicsSuite):
    """The small GFN2-xTB model of Ac-Ala3-NHMe shipped in the package."""

    spec = "ala3-xtb"
    invariance_atol = 1e-9
    finite_difference_atol = 1e-6
    stress_atol = 1e-7
    float32_energy_per_atom = 1e-5
    float32_forces = 2e-4
