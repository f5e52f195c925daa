"""The spherical harmonics the model is built on: an orthonormal real basis of each degree, checked by the
addition theorem (which holds for every orthonormal basis of a degree and for nothing else), by the known
first degree, and by their gradients (forces differentiate through them)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import legendre

from so3k_driver.model.basis import spherical_harmonics


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, 3))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.mark.parametrize("degree", [1, 2, 3, 4])
def test_each_degree_obeys_the_addition_theorem(degree):
    """sum_m Y_lm(a) Y_lm(b) = (2l+1)/(4 pi) P_l(a.b) for all unit vectors a, b."""
    a, b = unit_vectors(40, 0), unit_vectors(40, 1)
    with jax.enable_x64(True):
        ya = np.asarray(spherical_harmonics(jnp.asarray(a), (degree,)))
        yb = np.asarray(spherical_harmonics(jnp.asarray(b), (degree,)))
    assert ya.shape == (40, 2 * degree + 1)
    cosines = a @ b.T  # every pair of a and b
    expected = (2 * degree + 1) / (4 * math.pi) * legendre.legval(cosines, [0] * degree + [1])
    np.testing.assert_allclose(ya @ yb.T, expected, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.sum(ya**2, axis=1), (2 * degree + 1) / (4 * math.pi), rtol=1e-14)


def test_degrees_are_concatenated_in_the_order_asked_and_degree_one_is_the_direction():
    r = unit_vectors(10, 2)
    with jax.enable_x64(True):
        together = np.asarray(spherical_harmonics(jnp.asarray(r), (1, 2, 4)))
        alone = [np.asarray(spherical_harmonics(jnp.asarray(r), (l,))) for l in (1, 2, 4)]
    np.testing.assert_array_equal(together, np.concatenate(alone, axis=1))
    # m = -1, 0, 1 is (y, z, x) times sqrt(3 / (4 pi))
    np.testing.assert_allclose(alone[0], math.sqrt(3 / (4 * math.pi)) * r[:, [1, 2, 0]], rtol=1e-14)


def test_gradients_match_finite_differences():
    r = unit_vectors(6, 3)
    weights = np.random.default_rng(4).normal(size=(3 + 5 + 7 + 9,))  # one per component of degrees 1-4

    def scalar(vectors):
        return jnp.sum(spherical_harmonics(vectors, (1, 2, 3, 4)) @ weights)

    with jax.enable_x64(True):
        gradient = np.asarray(jax.grad(scalar)(jnp.asarray(r)))
        step = 1e-6
        numeric = np.zeros_like(r)
        for index in np.ndindex(r.shape):
            shifted = [r.copy(), r.copy()]
            shifted[0][index] += step
            shifted[1][index] -= step
            numeric[index] = (float(scalar(jnp.asarray(shifted[0]))) - float(scalar(jnp.asarray(shifted[1])))) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-7, atol=1e-8)
