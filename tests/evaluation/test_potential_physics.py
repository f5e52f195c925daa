"""Symmetries, derivatives and batching of the SO3krates potential (random paper-configuration weights)."""

import numpy as np
import pytest

from conftest import periodic_test_system, random_rotation

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def ala3(ala3_reference):
    return ala3_reference["numbers"], ala3_reference["positions"].astype(np.float64)


def test_rotation_translation_invariance_and_force_equivariance(so3krates64, ala3):
    numbers, positions = ala3
    base = so3krates64.evaluate(numbers, positions)
    rotation = random_rotation(1)
    moved = positions @ rotation.T + np.array([3.0, -7.5, 12.25])
    other = so3krates64.evaluate(numbers, moved)
    assert abs(other.energy[0] - base.energy[0]) < 1e-10
    np.testing.assert_allclose(other.forces[0], base.forces[0] @ rotation.T, atol=1e-10)


def test_permutation_invariance(so3krates64, ala3):
    numbers, positions = ala3
    order = np.random.default_rng(2).permutation(len(numbers))
    base = so3krates64.evaluate(numbers, positions)
    permuted = so3krates64.evaluate(numbers[order], positions[order])
    assert abs(permuted.energy[0] - base.energy[0]) < 1e-10
    np.testing.assert_allclose(permuted.forces[0], base.forces[0][order], atol=1e-10)


def test_forces_are_central_differences_of_energy(so3krates64, ala3):
    numbers, positions = ala3
    forces = so3krates64.evaluate(numbers, positions).forces[0]
    h = 1e-4
    rng = np.random.default_rng(3)
    for atom, axis in zip(rng.choice(len(numbers), 6, replace=False), rng.integers(0, 3, 6)):
        plus, minus = positions.copy(), positions.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        e_plus = so3krates64.evaluate(numbers, plus).energy[0]
        e_minus = so3krates64.evaluate(numbers, minus).energy[0]
        numeric = -(e_plus - e_minus) / (2 * h)
        assert numeric == pytest.approx(forces[atom, axis], abs=1e-8, rel=1e-5)


def test_stress_is_finite_strain_derivative_in_triclinic_cell(so3krates64):
    numbers, positions, cell = periodic_test_system()
    results = so3krates64.evaluate(numbers, positions, cell)
    volume = abs(np.linalg.det(cell))
    h = 1e-5
    for i, j in [(0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2)]:
        strain = np.zeros((3, 3))
        strain[i, j] = strain[j, i] = h / (2 if i != j else 1)
        energies = []
        for sign in (1, -1):
            deform = np.eye(3) + sign * strain
            energies.append(so3krates64.evaluate(numbers, positions @ deform, cell @ deform).energy[0])
        # dE/d(eps_ij) for a symmetric perturbation of both (i, j) and (j, i)
        numeric = (energies[0] - energies[1]) / (2 * h) / volume
        assert numeric == pytest.approx(results.stress[0][i, j], abs=1e-8, rel=1e-5)
    np.testing.assert_allclose(results.virial[0], -results.stress[0] * volume, atol=1e-12)
    assert np.abs(results.stress[0]).max() > 1e-5  # the check above is not trivially zero


def test_several_periodic_images_are_counted(so3krates64):
    from so3k_driver.evaluation.neighbors import half_pair_list

    numbers, positions, cell = periodic_test_system()
    pairs = half_pair_list(positions, 5.0, cell, True)
    assert np.linalg.norm(pairs.shifts, axis=1).max() > 1.5 * np.linalg.norm(cell, axis=1).max()  # second images
    self_images = np.sum(pairs.first == pairs.second)
    assert self_images > 0  # an atom sees its own images: cutoff > half the cell


def test_lattice_shift_invariance(so3krates64):
    numbers, positions, cell = periodic_test_system()
    base = so3krates64.evaluate(numbers, positions, cell)
    shifted = positions.copy()
    shifted[[0, 3]] += cell[1] - 2 * cell[2]
    shifted[5] -= cell[0]
    other = so3krates64.evaluate(numbers, shifted, cell)
    assert abs(other.energy[0] - base.energy[0]) < 1e-9
    np.testing.assert_allclose(other.forces[0], base.forces[0], atol=1e-9)
    np.testing.assert_allclose(other.stress[0], base.stress[0], atol=1e-10)


def test_batch_isolation(so3krates64, ala3):
    numbers, positions = ala3
    rng = np.random.default_rng(4)
    structures = [positions + rng.normal(scale=0.05, size=positions.shape) for _ in range(3)]
    batched = so3krates64.evaluate(numbers, np.stack(structures))
    for b, structure in enumerate(structures):
        single = so3krates64.evaluate(numbers, structure)
        assert abs(batched.energy[b] - single.energy[0]) < 1e-10
        np.testing.assert_allclose(batched.forces[b], single.forces[0], atol=1e-10)


def test_float32_agrees_with_float64(so3krates32, so3krates64, ala3):
    numbers, positions = ala3
    r32 = so3krates32.evaluate(numbers, positions)
    r64 = so3krates64.evaluate(numbers, positions)
    assert abs(r32.energy[0] - r64.energy[0]) < 1e-5
    assert np.abs(r32.forces[0] - r64.forces[0]).max() < 1e-6


def test_float64_request_leaves_global_jax_setting_alone(so3krates64, ala3):
    import jax

    numbers, positions = ala3
    so3krates64.evaluate(numbers, positions)
    assert not jax.config.jax_enable_x64


def test_short_md_compiles_once_per_bucket(ala3):
    from conftest import SO3KRATES_RANDOM
    from so3k_driver.evaluation.potential import Potential

    potential = Potential.load(SO3KRATES_RANDOM)
    numbers, positions = ala3
    from ase.data import atomic_masses

    masses = atomic_masses[numbers][:, None] * 103.6427  # amu -> eV fs^2 / Å^2
    rng = np.random.default_rng(5)
    velocities = rng.normal(size=positions.shape) * np.sqrt(8.617e-5 * 1500 / masses)  # 1500 K, Å/fs
    dt = 0.5
    forces = potential.evaluate(numbers, positions).forces[0]
    capacities = set()
    for _ in range(60):
        velocities += 0.5 * dt * forces / masses
        positions = positions + dt * velocities
        forces = potential.evaluate(numbers, positions).forces[0]
        velocities += 0.5 * dt * forces / masses
        capacities.add(potential.pair_capacity(1, len(numbers)))
    assert potential.compile_count == len(capacities)
    assert potential.compile_count <= 2


def test_batches_split_into_calls_give_the_same_numbers(ala3):
    from conftest import SO3KRATES_RANDOM
    from so3k_driver.evaluation.potential import Potential

    numbers, positions = ala3
    rng = np.random.default_rng(6)
    batch = np.stack([positions + rng.normal(scale=0.03, size=positions.shape) for _ in range(5)])
    split = Potential.load(SO3KRATES_RANDOM, dtype="float64", pairs_per_call=1000)  # 2 per call (≈ 405 pairs each)
    whole = Potential.load(SO3KRATES_RANDOM, dtype="float64", pairs_per_call=None)
    a, b = split.evaluate(numbers, batch), whole.evaluate(numbers, batch)
    np.testing.assert_allclose(a.energy, b.energy, atol=1e-10)
    np.testing.assert_allclose(a.forces, b.forces, atol=1e-10)
    assert split.compile_count == 1  # the last, padded call has the same shape as the others


def test_repeated_last_structures_are_evaluated_once(ala3):
    """i-PI pads a short batch by repeating its last structure: the copies cost no model time."""
    from conftest import SO3KRATES_RANDOM
    from so3k_driver.evaluation.potential import Potential

    numbers, positions = ala3
    rng = np.random.default_rng(7)
    distinct = np.stack([positions + rng.normal(scale=0.03, size=positions.shape) for _ in range(3)])
    padded = np.concatenate([distinct, np.repeat(distinct[-1:], 3, axis=0)])  # 6 slots, 3 distinct
    potential = Potential.load(SO3KRATES_RANDOM, dtype="float64", pairs_per_call=1000)  # 2 per call
    structures_computed = []
    original_call = potential._call

    def counting_call(batch, *args):
        structures_computed.append(len(batch.total_charge))  # structure slots of the call
        return original_call(batch, *args)

    potential._call = counting_call
    result = potential.evaluate(numbers, padded)
    assert structures_computed == [2, 2]  # structures 0-1, then 2 (+ its call padding); not 3 calls
    single = Potential.load(SO3KRATES_RANDOM, dtype="float64", pairs_per_call=None).evaluate(numbers, distinct)
    np.testing.assert_allclose(result.energy, single.energy[[0, 1, 2, 2, 2, 2]], atol=1e-10)
    np.testing.assert_allclose(result.forces, single.forces[[0, 1, 2, 2, 2, 2]], atol=1e-10)
    structures_computed.clear()
    full = potential.evaluate(numbers, np.concatenate([distinct, distinct + 0.01]))  # no copies: 3 calls
    assert structures_computed == [2, 2, 2]
    np.testing.assert_allclose(full.energy[:3], single.energy, atol=1e-10)
    assert potential.compile_count == 1
