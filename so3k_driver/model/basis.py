"""Geometry embedding: spherical harmonics, radial bases and cutoff functions (spec section 2.1).

Pure functions of distances (Å) and unit vectors; no parameters.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

# 0.5 bohr^-1, rounded to float32 as the reference implementation does even in float64 runs
# (spec C.2.1); using the exact value moves a 42-atom energy by ~1e-6 eV.
BERNSTEIN_GAMMA = float(np.float32(0.9448630629184640))


def spherical_harmonics(unit_vectors: jax.Array, degrees: tuple[int, ...]) -> jax.Array:
    """Real orthonormal spherical harmonics of the given degrees, concatenated.

    unit_vectors: (P, 3), normalised. Returns (P, M) with M = sum(2l+1), components of each
    degree contiguous and in ascending degree order, m = -l..l within a degree:

        Y_l0  = N_l0 Q_l^0(z),   Y_l±m = sqrt(2) N_lm Q_l^m(z) {C_m, S_m}(x, y),   N_lm = sqrt((2l+1)/(4π) (l-m)!/(l+m)!)

    with C_m + i S_m = (x + i y)^m and Q_l^m = d^m P_l / dz^m (no Condon-Shortley sign), so ∫ Y_lm Y_l'm' dΩ = δ.
    Any orthonormal real basis gives the same energies as the authors' convention (e3x's, here a
    different sign and order within a degree): the model only contracts components within a degree.
    Polynomials written out for the degrees asked, rather than e3x's table, which costs every process
    ~1.6 s of imports (sympy) at start.
    """
    x, y, z = unit_vectors[:, 0], unit_vectors[:, 1], unit_vectors[:, 2]
    top = max(degrees)
    cos_part, sin_part = [jnp.ones_like(x)], [jnp.zeros_like(x)]  # C_m, S_m for m = 0..top
    for _ in range(top):
        c, s = cos_part[-1], sin_part[-1]
        cos_part.append(x * c - y * s)
        sin_part.append(x * s + y * c)
    legendre = {}  # (l, m) -> Q_l^m(z), by the upward recursion in l at fixed m
    for m in range(top + 1):
        legendre[m, m] = jnp.full_like(z, float(math.prod(range(1, 2 * m, 2))))  # (2m-1)!!
        if m + 1 <= top:
            legendre[m + 1, m] = (2 * m + 1) * z * legendre[m, m]
        for l in range(m + 2, top + 1):
            legendre[l, m] = ((2 * l - 1) * z * legendre[l - 1, m] - (l + m - 1) * legendre[l - 2, m]) / (l - m)
    columns = []
    for l in degrees:
        for m in range(-l, l + 1):
            k = abs(m)
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - k) / math.factorial(l + k))
            if m == 0:
                columns.append(norm * legendre[l, 0])
            else:
                columns.append(math.sqrt(2.0) * norm * legendre[l, k] * (cos_part[k] if m > 0 else sin_part[k]))
    return jnp.stack(columns, axis=-1)


def degree_index(degrees: tuple[int, ...]) -> np.ndarray:
    """For every component m of the concatenated harmonics, the position of its degree in ``degrees``."""
    return np.concatenate([np.full(2 * l + 1, k) for k, l in enumerate(degrees)])


def parity(degrees: tuple[int, ...]) -> np.ndarray:
    """(-1)^l per component: Y(-r) = (-1)^l Y(r)."""
    return np.concatenate([np.full(2 * l + 1, (-1.0) ** l) for l in degrees])


def degree_contraction_matrix(degrees: tuple[int, ...]) -> np.ndarray:
    """(M, |L|) matrix C with (v**2) @ C = c_l(v) = sum_m v_lm^2 / sqrt(2l+1) (the l=0 CG contraction)."""
    index = degree_index(degrees)
    matrix = np.zeros((len(index), len(degrees)))
    for m, k in enumerate(index):
        matrix[m, k] = 1.0 / math.sqrt(2 * degrees[k] + 1)
    return matrix


def radial_basis(name: str, distances: jax.Array, num: int, cutoff: float) -> jax.Array:
    """Radial basis functions, (P,) Å -> (P, num). Distances must be > 0."""
    d = distances[:, None]
    k = jnp.arange(num, dtype=distances.dtype)
    if name == "physnet":
        centres = jnp.linspace(math.exp(-cutoff), 1.0, num, dtype=distances.dtype)
        beta = ((2.0 / num) * (1.0 - math.exp(-cutoff))) ** -2
        return jnp.exp(-beta * (jnp.exp(-d) - centres) ** 2)
    if name == "bernstein":
        # log-space evaluation of C(K-1,k) x^k (1-x)^(K-1-k) with x = exp(-gamma d); log x = -gamma d.
        log_binomial = np.array(
            [math.lgamma(num) - math.lgamma(i + 1) - math.lgamma(num - i) for i in range(num)]
        )
        log_x = -BERNSTEIN_GAMMA * d
        log_one_minus_x = jnp.log1p(-jnp.exp(log_x))
        values = jnp.exp(log_binomial.astype(distances.dtype) + k * log_x + (num - 1 - k) * log_one_minus_x)
        return jnp.where(d > 0, values, 0.0)
    if name == "gaussian":
        centres = jnp.linspace(0.0, cutoff, num, dtype=distances.dtype)
        width = cutoff / num
        return jnp.exp(-0.5 * ((d - centres) / width) ** 2)
    if name == "bessel":
        n = k + 1
        return math.sqrt(2.0 / cutoff) * jnp.sin(n * math.pi * d / cutoff) / d
    raise ValueError(f"unknown radial basis {name!r}")


def cutoff_function(name: str, distances: jax.Array, cutoff: float, polynomial_degree: int = 6) -> jax.Array:
    """Smooth cutoff, (P,) Å -> (P,), exactly 0 for d >= cutoff."""
    inside = distances < cutoff
    u = jnp.where(inside, distances / cutoff, 0.0)
    if name == "cosine":
        value = 0.5 * (jnp.cos(math.pi * u) + 1.0)
    elif name == "phys":
        value = 1.0 - 6.0 * u**5 + 15.0 * u**4 - 10.0 * u**3
    elif name == "polynomial":
        p = polynomial_degree
        value = (
            1.0
            - (p + 1) * (p + 2) / 2 * u**p
            + p * (p + 2) * u ** (p + 1)
            - p * (p + 1) / 2 * u ** (p + 2)
        )
    elif name == "exponential":
        value = jnp.exp(-(u**2) / ((1.0 - u) * (1.0 + u)))
    else:
        raise ValueError(f"unknown cutoff function {name!r}")
    return jnp.where(inside, value, 0.0)


def smooth_switch(x: jax.Array, x_on: float, x_off: float) -> jax.Array:
    """Smooth step from 1 (x <= x_on) to 0 (x >= x_off) built on exp(-1/t) (spec appendix)."""
    c = (x - x_on) / (x_off - x_on)

    def sigma(t):
        positive = t > 0
        return jnp.where(positive, jnp.exp(-1.0 / jnp.where(positive, t, 1.0)), 0.0)

    a, b = sigma(1.0 - c), sigma(c)
    return a / (a + b)
