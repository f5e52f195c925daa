"""The published SO3LR model (weights in ../shared, never shipped) reproduced by our implementation;
its symmetries, derivatives and stress are checked by the shared suite (tests/evaluation/test_physics.py)."""

import numpy as np
import pytest

from conftest import REFERENCE, SO3LR

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def so3lr32():
    from so3k_driver.evaluation.potential import Potential

    return Potential.load(SO3LR, dtype="float32")


def reference(dtype):
    return np.load(REFERENCE / f"so3lr_ala3_{dtype}.npz")


def test_float64_matches_authors(so3lr64):
    ref = reference("float64")
    results = so3lr64.evaluate(ref["numbers"], ref["positions"])
    n = len(ref["numbers"])
    assert abs(results.energy[0] - float(ref["energy"])) / n <= 1e-6
    assert np.abs(results.forces[0] - ref["forces"]).max() <= 1e-5


def test_float32_matches_authors(so3lr32):
    ref = reference("float32")
    results = so3lr32.evaluate(ref["numbers"], ref["positions"])
    n = len(ref["numbers"])
    assert abs(results.energy[0] - float(ref["energy"])) / n <= 1e-4
    assert np.abs(results.forces[0] - ref["forces"]).max() <= 2e-4


@pytest.mark.parametrize("charge, unpaired", [(0.0, 0.0), (1.0, 1.0), (-1.0, 0.0)])
def test_partial_charges_sum_to_total_charge(so3lr64, charge, unpaired):
    ref = reference("float64")
    results = so3lr64.evaluate(ref["numbers"], ref["positions"], total_charge=charge, unpaired_electrons=unpaired)
    assert results.extras["charges"].sum() == pytest.approx(charge, abs=1e-10)
    dipole = (results.extras["charges"][0][:, None] * ref["positions"]).sum(0)
    np.testing.assert_allclose(results.extras["dipole"][0], dipole, atol=1e-10)
    assert results.extras["hirshfeld_ratios"].shape == (1, 42)


def test_charge_embedding_changes_energy(so3lr64):
    ref = reference("float64")
    neutral = so3lr64.evaluate(ref["numbers"], ref["positions"]).energy[0]
    cation = so3lr64.evaluate(ref["numbers"], ref["positions"], total_charge=1.0, unpaired_electrons=1.0).energy[0]
    assert abs(cation - neutral) > 0.1


@pytest.mark.parametrize("lr_cutoff", [12.0, None])
def test_dense_and_listed_long_range_pairs_give_the_same_numbers(lr_cutoff):
    """Dense (S, N, N) long-range arrays and the half pair list are the same sums: the extended
    Ac-Ala15-NHMe (55 Å long, so the 12 Å cutoff drops pairs) in a batch of two, float64."""
    import ase.io

    from conftest import REPO
    from so3k_driver.evaluation.potential import Potential

    atoms = ase.io.read(REPO / "so3k_driver" / "data" / "Ac-Ala15-NHMe_ext.xyz")
    positions = atoms.positions[None] + 0.05 * np.random.default_rng(3).normal(size=(2, len(atoms), 3))
    results = {}
    for dense in (True, False):
        potential = Potential.load(SO3LR, dtype="float64", lr_cutoff=lr_cutoff, dense_long_range=dense)
        assert potential.uses_dense_long_range(periodic=False, num_atoms=len(atoms)) is dense
        results[dense] = potential.evaluate(atoms.numbers, positions)
    np.testing.assert_allclose(results[True].energy, results[False].energy, rtol=0, atol=1e-9)
    np.testing.assert_allclose(results[True].forces, results[False].forces, rtol=0, atol=1e-9)
    np.testing.assert_allclose(results[True].extras["charges"], results[False].extras["charges"], atol=1e-12)


def test_long_range_layout_choice():
    from so3k_driver.evaluation.potential import DENSE_LONG_RANGE_MAX_ATOMS, Potential

    potential = Potential.load(SO3LR, dtype="float32")
    assert potential.uses_dense_long_range(periodic=False, num_atoms=42)
    assert not potential.uses_dense_long_range(periodic=False, num_atoms=DENSE_LONG_RANGE_MAX_ATOMS + 1)
    assert not potential.uses_dense_long_range(periodic=True, num_atoms=42)  # periodic images need the list
    with pytest.raises(ValueError, match="dense_long_range must be True, False or 'auto', got 'yes'"):
        Potential.load(SO3LR, dtype="float32", dense_long_range="yes")


def two_waters(separation):
    water = np.array([[0.0, 0.0, 0.0], [0.757, 0.586, 0.0], [-0.757, 0.586, 0.0]])
    numbers = np.array([8, 1, 1, 8, 1, 1])
    return numbers, np.vstack([water, water + [separation, 0.0, 0.0]])


@pytest.mark.parametrize("dense", [True, False])
def test_no_energy_jump_when_a_pair_crosses_the_long_range_cutoff(dense):
    from so3k_driver.evaluation.potential import Potential

    potential = Potential.load(SO3LR, dtype="float64", lr_cutoff=6.0, dense_long_range=dense)
    numbers, _ = two_waters(0.0)
    # The O-O distance equals the separation: step it across the 6 Å long-range cutoff. A hard cutoff
    # would jump by ~k_e q_O q_O / 6 Å ~ 0.1 eV; the smooth switch leaves only the slope (~1e-2 eV/Å).
    delta = 1e-6
    inside = potential.evaluate(numbers, two_waters(6.0 - delta)[1]).energy[0]
    outside = potential.evaluate(numbers, two_waters(6.0 + delta)[1]).energy[0]
    assert abs(outside - inside) < 1e-7
    far = potential.evaluate(numbers, two_waters(7.5)[1]).energy[0]
    beyond = potential.evaluate(numbers, two_waters(8.0)[1]).energy[0]
    assert abs(far - beyond) < 1e-5  # beyond every pair's cutoff the waters no longer interact


