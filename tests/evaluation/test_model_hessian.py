"""Lindh's model Hessian (evaluation/model_hessian.py): symmetry, invariances, the internal-coordinate
gradients against finite differences, and the closed form for a diatomic."""

from pathlib import Path

import ase.io
import numpy as np
import pytest

from so3k_driver.evaluation import model_hessian
from so3k_driver.evaluation.model_hessian import inverse_preconditioner, lindh_hessian
from so3k_driver.units import BOHR_IN_ANGSTROM, HARTREE_IN_EV

DATA = Path(__file__).resolve().parents[2] / "so3k_driver" / "data"


@pytest.fixture(scope="module")
def ala3():
    atoms = ase.io.read(DATA / "Ac-Ala3-NHMe_ext.xyz")
    return atoms.numbers, atoms.positions


def distance(x, i, j):
    return np.linalg.norm(x[i] - x[j])


def angle(x, i, j, k):
    u, v = x[i] - x[j], x[k] - x[j]
    return np.arccos(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))


def dihedral(x, i, j, k, l_):
    b1, b2, b3 = x[j] - x[i], x[k] - x[j], x[l_] - x[k]
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    return np.arctan2(np.dot(np.cross(n1, n2), b2 / np.linalg.norm(b2)), np.dot(n1, n2))


def finite_difference_gradient(coordinate, x, atoms, h=1e-6):
    grad = np.zeros((len(atoms), 3))
    for a, atom in enumerate(atoms):
        for c in range(3):
            plus, minus = x.copy(), x.copy()
            plus[atom, c] += h
            minus[atom, c] -= h
            difference = coordinate(plus, *atoms) - coordinate(minus, *atoms)
            grad[a, c] = (difference + np.pi) % (2 * np.pi) - np.pi  # torsions near ±180° wrap
            grad[a, c] /= 2 * h
    return grad


@pytest.mark.parametrize("terms, coordinate", [("pair", distance), ("angle", angle), ("torsion", dihedral)])
def test_internal_coordinate_gradients_equal_finite_differences(ala3, terms, coordinate):
    numbers, positions = ala3
    x = positions / BOHR_IN_ANGSTROM
    rho = model_hessian.bondedness(numbers, x)
    neighbours = model_hessian._neighbour_table(rho > model_hessian.DEFAULT_THRESHOLD)
    if terms == "pair":
        atoms, grads, weights = model_hessian._pair_terms(x, rho, model_hessian.DEFAULT_THRESHOLD)
    else:
        make = model_hessian._angle_terms if terms == "angle" else model_hessian._torsion_terms
        atoms, grads, weights = make(x, rho, neighbours, model_hessian.DEFAULT_THRESHOLD)
    assert len(weights) > 20 and (weights > model_hessian.DEFAULT_THRESHOLD).all()
    for t in np.linspace(0, len(weights) - 1, 12).astype(int):
        expected = finite_difference_gradient(coordinate, x, tuple(atoms[t]))
        np.testing.assert_allclose(grads[t], expected, atol=1e-6 * max(1.0, np.abs(expected).max()),
                                   err_msg=f"{terms} {atoms[t]}")


def test_the_hessian_is_symmetric_positive_semidefinite_and_blind_to_rigid_motions(ala3):
    numbers, positions = ala3
    hessian = lindh_hessian(numbers, positions)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-10)
    eigenvalues = np.linalg.eigvalsh(hessian)
    scale = eigenvalues.max()
    assert eigenvalues.min() > -1e-10 * scale
    # exactly six zero modes (three translations, three rotations) for this non-linear molecule
    assert np.sum(eigenvalues < 1e-8 * scale) == 6 and eigenvalues[6] > 1e-5 * scale
    centred = positions - positions.mean(axis=0)
    for axis in np.eye(3):
        translation = np.tile(axis, len(numbers))
        rotation = np.cross(axis, centred).ravel()
        assert np.abs(hessian @ translation).max() < 1e-9 * scale
        assert np.abs(hessian @ rotation).max() < 1e-9 * scale
    # the stiffest modes are X-H stretches, the softest internal ones torsions: what L-BFGS needs to know
    assert scale > 100 * eigenvalues[6]


def test_a_diatomic_has_the_closed_form_k_rho_along_the_bond():
    r = 0.9  # Å, H2 slightly stretched
    hessian = lindh_hessian([1, 1], [[0.0, 0.0, 0.0], [0.0, 0.0, r]])
    r_bohr = r / BOHR_IN_ANGSTROM
    k = 0.45 * np.exp(1.0 * (1.35**2 - r_bohr**2)) * HARTREE_IN_EV / BOHR_IN_ANGSTROM**2  # eV/Å²
    expected = np.zeros((6, 6))
    expected[2, 2] = expected[5, 5] = k
    expected[2, 5] = expected[5, 2] = -k
    np.testing.assert_allclose(hessian, expected, atol=1e-12)


def test_the_inverse_preconditioner_inverts_the_shifted_hessian(ala3):
    numbers, positions = ala3
    inverse = inverse_preconditioner(numbers, positions, shift=2.0)
    shifted = lindh_hessian(numbers, positions) + 2.0 * np.eye(3 * len(numbers))
    np.testing.assert_allclose(inverse @ shifted, np.eye(3 * len(numbers)), atol=1e-9)


def test_elements_beyond_the_third_row_use_its_parameters():
    chlorine = lindh_hessian([6, 17], [[0.0, 0.0, 0.0], [1.77, 0.0, 0.0]])
    iodine = lindh_hessian([6, 53], [[0.0, 0.0, 0.0], [1.77, 0.0, 0.0]])
    np.testing.assert_array_equal(chlorine, iodine)
    assert chlorine[0, 0] > 0


def test_bad_arguments_name_what_was_received():
    with pytest.raises(ValueError, match=r"shape \(2, 3\), got \(3, 3\)"):
        lindh_hessian([1, 1], np.zeros((3, 3)))
    with pytest.raises(ValueError, match="shift must be > 0 eV/Å², got 0.0"):
        inverse_preconditioner([1, 1], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]], shift=0.0)
