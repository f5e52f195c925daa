"""The physics every model kind must obey, written once and inherited (NequIP-style test mixin).

A model's test class sets ``spec`` (a MODEL spec for ``Potential.load``), ``options`` (load options),
``periodic_options`` (load options for the periodic checks; SO3LR needs a finite long-range cutoff)
and the tolerances, and inherits every check:

- invariance of E and equivariance of F under rotation + translation, and under atom permutation;
- F = -dE/dr by central finite differences (float64);
- stress = (1/V) dE/d(strain) by finite strain in a triclinic cell, virial = -stress V;
- invariance under lattice translations of single atoms;
- batch isolation: a structure in a batch gets the numbers it gets alone;
- float32 agrees with float64.

Units: Å, eV, eV/Å, eV/Å^3.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import periodic_test_system, random_rotation

ALA3 = "Ac-Ala3-NHMe_ext.xyz"


def bundled_molecule(name: str = ALA3):
    """numbers (N,), positions (N, 3) Å of a structure shipped with the package."""
    import ase.io

    from so3k_driver.sampling.plumed_inputs import bundled_structure

    atoms = ase.io.read(bundled_structure(name))
    return atoms.numbers, atoms.positions.astype(np.float64)


class PotentialPhysicsSuite:
    spec: str = ""
    options: dict = {}
    periodic_options: dict = {}
    invariance_atol = 1e-9        # eV and eV/Å, float64
    finite_difference_atol = 1e-7  # eV/Å (central differences, h = 1e-4 Å)
    stress_atol = 1e-8            # eV/Å^3 (central differences, h = 1e-5)
    float32_energy_per_atom = 1e-5  # eV/atom
    float32_forces = 1e-4         # eV/Å

    # ------------------------------------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def pot64(cls):
        from so3k_driver.evaluation.potential import Potential

        return Potential.load(cls.spec, dtype="float64", **cls.options)

    @pytest.fixture(scope="class")
    @classmethod
    def pot32(cls):
        from so3k_driver.evaluation.potential import Potential

        return Potential.load(cls.spec, dtype="float32", **cls.options)

    @pytest.fixture(scope="class")
    @classmethod
    def periodic64(cls, pot64):
        from so3k_driver.evaluation.potential import Potential

        if cls.periodic_options == cls.options:
            return pot64
        return Potential.load(cls.spec, dtype="float64", **cls.periodic_options)

    @pytest.fixture(scope="class")
    @classmethod
    def molecule(cls):
        return bundled_molecule()

    def periodic_system(self):
        """numbers, positions (Å), cell (Å, rows): 8 atoms whose 5 Å cutoff reaches second images."""
        return periodic_test_system()

    # ------------------------------------------------------------------------------------------
    def test_rotation_translation_invariance_and_force_equivariance(self, pot64, molecule):
        numbers, positions = molecule
        base = pot64.evaluate(numbers, positions)
        rotation = random_rotation(1)
        moved = pot64.evaluate(numbers, positions @ rotation.T + np.array([3.0, -7.5, 12.25]))
        assert abs(moved.energy[0] - base.energy[0]) < self.invariance_atol
        np.testing.assert_allclose(moved.forces[0], base.forces[0] @ rotation.T, atol=self.invariance_atol)

    def test_permutation_invariance(self, pot64, molecule):
        numbers, positions = molecule
        order = np.random.default_rng(2).permutation(len(numbers))
        base = pot64.evaluate(numbers, positions)
        permuted = pot64.evaluate(numbers[order], positions[order])
        assert abs(permuted.energy[0] - base.energy[0]) < self.invariance_atol
        np.testing.assert_allclose(permuted.forces[0], base.forces[0][order], atol=self.invariance_atol)

    def test_forces_are_central_differences_of_energy(self, pot64, molecule):
        numbers, positions = molecule
        forces = pot64.evaluate(numbers, positions).forces[0]
        assert np.abs(forces).max() > 100 * self.finite_difference_atol  # not trivially zero
        h = 1e-4
        rng = np.random.default_rng(3)
        for atom, axis in zip(rng.choice(len(numbers), 6, replace=False), rng.integers(0, 3, 6)):
            plus, minus = positions.copy(), positions.copy()
            plus[atom, axis] += h
            minus[atom, axis] -= h
            numeric = -(pot64.evaluate(numbers, plus).energy[0] - pot64.evaluate(numbers, minus).energy[0]) / (2 * h)
            assert numeric == pytest.approx(forces[atom, axis], abs=self.finite_difference_atol, rel=1e-5)

    def test_stress_is_finite_strain_derivative(self, periodic64):
        numbers, positions, cell = self.periodic_system()
        results = periodic64.evaluate(numbers, positions, cell)
        assert np.abs(results.stress[0]).max() > 100 * self.stress_atol  # not trivially zero
        volume = abs(np.linalg.det(cell))
        h = 1e-5
        for i, j in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]:
            strain = np.zeros((3, 3))
            strain[i, j] = strain[j, i] = h / (2 if i != j else 1)
            energies = [periodic64.evaluate(numbers, positions @ (np.eye(3) + s * strain),
                                            cell @ (np.eye(3) + s * strain)).energy[0] for s in (1, -1)]
            numeric = (energies[0] - energies[1]) / (2 * h) / volume
            assert numeric == pytest.approx(results.stress[0][i, j], abs=self.stress_atol, rel=1e-5)
        np.testing.assert_allclose(results.virial[0], -results.stress[0] * volume, atol=1e-12)

    def test_lattice_translation_invariance(self, periodic64):
        numbers, positions, cell = self.periodic_system()
        base = periodic64.evaluate(numbers, positions, cell)
        shifted = positions.copy()
        shifted[[0, 3]] += cell[1] - 2 * cell[2]
        shifted[5] -= cell[0]
        other = periodic64.evaluate(numbers, shifted, cell)
        assert abs(other.energy[0] - base.energy[0]) < self.invariance_atol
        np.testing.assert_allclose(other.forces[0], base.forces[0], atol=self.invariance_atol)
        np.testing.assert_allclose(other.stress[0], base.stress[0], atol=self.invariance_atol)

    def test_batch_isolation(self, pot64, molecule):
        numbers, positions = molecule
        rng = np.random.default_rng(4)
        structures = [positions + rng.normal(scale=0.05, size=positions.shape) for _ in range(3)]
        batched = pot64.evaluate(numbers, np.stack(structures))
        assert np.ptp(batched.energy) > 1e3 * self.invariance_atol  # the structures differ
        for b, structure in enumerate(structures):
            single = pot64.evaluate(numbers, structure)
            assert abs(batched.energy[b] - single.energy[0]) < self.invariance_atol
            np.testing.assert_allclose(batched.forces[b], single.forces[0], atol=self.invariance_atol)

    def test_float32_agrees_with_float64(self, pot32, pot64, molecule):
        numbers, positions = molecule
        r32, r64 = pot32.evaluate(numbers, positions), pot64.evaluate(numbers, positions)
        assert abs(r32.energy[0] - r64.energy[0]) / len(numbers) < self.float32_energy_per_atom
        assert np.abs(r32.forces[0] - r64.forces[0]).max() < self.float32_forces
