"""SO3LR additions to SO3krates (spec 2.2, 2.8 and appendix C): charge/spin embedding, ZBL
repulsion, partial charges, damped shifted-force electrostatics and QDO-type dispersion.

Pair sums run over *half* pair lists (each unordered pair once), so the ½ factor of the authors'
bidirectional lists is already accounted for. Per-atom attribution of a pair energy: half to each.
Units: Å, eV; the dispersion formula is evaluated in atomic units and converted.
"""

from __future__ import annotations

import json
import dataclasses
import math
from importlib import resources

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from .. import units
from . import basis
from .so3krates import NUM_ELEMENT_ROWS, DenseParams, Table, dense

NUM_CHARGE_ROWS = 100  # partial-charge and Hirshfeld tables are (100, ·): Z <= 99
ZBL_SWITCH_OFF = 1.5  # Å
SIGMA_FIT = (-0.00433008, 0.24428889, 0.04125273, -0.00078893)  # b0..b3 of sigma(R_vdW)


def free_atom_tables() -> tuple[np.ndarray, np.ndarray]:
    """(alpha, C6) per element, index Z-1, atomic units (bohr^3, hartree bohr^6)."""
    data = json.loads(resources.files("so3k_driver.data").joinpath("free_atoms.json").read_text())
    return np.asarray(data["alphas"], float), np.asarray(data["C6_coef"], float)


def pair_to_atoms(pair_energy, first, second, num_atoms):
    """Attribute each pair energy half to each of its atoms: (P,) -> (A,)."""
    half = 0.5 * pair_energy
    return jax.ops.segment_sum(jnp.concatenate([half, half]), jnp.concatenate([first, second]), num_atoms)


@dataclasses.dataclass(frozen=True)
class ListedPairs:
    """The long-range pairs as a half list: first, second (Q,) atom indices, distances (Q,) Å, mask (Q,)
    False for padding; num_atoms A."""

    first: jax.Array
    second: jax.Array
    distances: jax.Array
    mask: jax.Array
    num_atoms: int

    def ends(self, values):
        """Per-atom values (A,) at the two atoms of every pair: two (Q,) arrays."""
        return values[self.first], values[self.second]

    def to_atoms(self, pair_energy):
        """Pair energies (Q,) -> per-atom energies (A,), half to each atom."""
        return pair_to_atoms(pair_energy, self.first, self.second, self.num_atoms)


@dataclasses.dataclass(frozen=True)
class DensePairs:
    """Every pair of atoms within each structure as dense arrays, for S structure slots of N atoms each
    (atoms ordered by slot, as the inference batcher packs them, none padded): distances (S, N, N) Å and
    mask (S, N, N), False on the diagonal. Each unordered pair appears twice, as (i, j) and (j, i), and
    each copy gives its row atom half the pair energy, so the sums equal the half list's.

    On a CPU this trades a gather per pair end and a scatter per pair energy (and their gradients)
    for elementwise passes over twice as many entries, which is cheaper for gas-phase molecules
    (docs/performance.md).
    """

    distances: jax.Array
    mask: jax.Array

    @classmethod
    def build(cls, positions, num_structures: int) -> "DensePairs":
        """From positions (A, 3) Å with A = S * N."""
        r = positions.reshape(num_structures, -1, 3)
        N = r.shape[1]
        squared = jnp.sum((r[:, None, :, :] - r[:, :, None, :]) ** 2, axis=-1)
        mask = jnp.broadcast_to(~jnp.eye(N, dtype=bool), squared.shape)
        # any finite diagonal distance will do: the energies there are masked, so their gradients are zero
        return cls(jnp.sqrt(jnp.where(mask, squared, 1.0)), mask)

    def ends(self, values):
        """Per-atom values (A,) at the two atoms of every pair: (S, N, 1) and (S, 1, N), broadcasting."""
        grid = values.reshape(self.distances.shape[:2])
        return grid[:, :, None], grid[:, None, :]

    def to_atoms(self, pair_energy):
        """Pair energies (S, N, N) -> per-atom energies (A,)."""
        return 0.5 * jnp.sum(pair_energy, axis=2).reshape(-1)


class ChargeSpinEmbedding(nn.Module):
    """SpookyNet-style embedding of a per-structure scalar psi (total charge or unpaired electrons).

    numbers: (A,), psi: (B,) -> (A, F) features e_i (spec C.2.2).
    """

    num_features: int

    @nn.compact
    def __call__(self, numbers, psi, atom_structure, num_structures):
        F = self.num_features
        dtype = psi.dtype
        q = Table(NUM_ELEMENT_ROWS, F, name="Embed_0")().astype(dtype)[numbers]
        sign_row = jnp.where(psi >= 0, 0, 1)[atom_structure]
        k = Table(2, F, name="Embed_1")().astype(dtype)[sign_row]
        v = Table(2, F, name="Embed_2")().astype(dtype)[sign_row]
        score = jax.nn.softplus(jnp.sum(q * k, axis=-1) / math.sqrt(F))
        total = jax.ops.segment_sum(score, atom_structure, num_structures)[atom_structure]
        a = psi[atom_structure] * score / total
        y = a[:, None] * v
        residual = Residual(F, name="Residual_0")
        return y + residual(y)


class Residual(nn.Module):
    num_features: int

    @nn.compact
    def __call__(self, y):
        w0 = DenseParams(self.num_features, self.num_features, use_bias=False, name="layers_0")()
        w1 = DenseParams(self.num_features, self.num_features, use_bias=False, name="layers_1")()
        return dense(jax.nn.silu(dense(jax.nn.silu(y), w0)), w1)


class ZBLRepulsion(nn.Module):
    """Ziegler-Biersack-Littmark screened nuclear repulsion on the short-range pairs -> (P,) eV."""

    cutoff: float
    cutoff_fn: str

    @nn.compact
    def __call__(self, z_first, z_second, distances, pair_mask):
        init = {
            "a1": 3.2, "a2": 0.9423, "a3": 0.4028, "a4": 0.2016,
            "c1": 0.1818, "c2": 0.5099, "c3": 0.2802, "c4": 0.02817,
            "p": 0.23, "d": 1.0 / (0.8854 * units.BOHR_IN_ANGSTROM),
        }
        raw = {
            name: self.param(name, nn.initializers.constant(math.log(math.expm1(value))), (1,))
            for name, value in init.items()
        }
        dtype = distances.dtype
        sp = {name: jax.nn.softplus(value.astype(dtype))[0] for name, value in raw.items()}
        c = jnp.stack([sp[f"c{k}"] for k in range(1, 5)])
        c = c / jnp.sum(c)
        a = jnp.stack([sp[f"a{k}"] for k in range(1, 5)])
        zi, zj = z_first.astype(dtype), z_second.astype(dtype)
        d = distances
        screening = jnp.sum(
            c * jnp.exp(-a * (d * (zi ** sp["p"] + zj ** sp["p"]) * sp["d"])[:, None]), axis=-1
        )
        switch = basis.smooth_switch(d, 0.0, ZBL_SWITCH_OFF)
        envelope = basis.cutoff_function(self.cutoff_fn, d, self.cutoff)
        energy = switch * units.COULOMB_EV_ANGSTROM * envelope * zi * zj / d * screening
        return jnp.where(pair_mask, energy, 0.0)


class PartialCharges(nn.Module):
    """Partial charges (e) conserving the total charge of each structure: (A, F) -> (A,)."""

    num_features: int

    @nn.compact
    def __call__(self, x, numbers, total_charge, atom_structure, num_structures):
        F = self.num_features
        offset = Table(NUM_CHARGE_ROWS, 1, name="Embed_0")().astype(x.dtype)[numbers, 0]
        h = jax.nn.silu(dense(x, DenseParams(F, F, name="charge_dense_regression_vec")()))
        raw = offset + dense(h, DenseParams(F, 1, name="charge_dense_final_vec")())[:, 0]
        excess = total_charge - jax.ops.segment_sum(raw, atom_structure, num_structures)
        count = jax.ops.segment_sum(jnp.ones_like(raw), atom_structure, num_structures)
        return raw + (excess / count)[atom_structure]


class HirshfeldRatios(nn.Module):
    """Hirshfeld volume ratios (dimensionless): (A, F) -> (A,)."""

    num_features: int

    @nn.compact
    def __call__(self, x, numbers):
        half = self.num_features // 2
        base = Table(NUM_CHARGE_ROWS, 1, name="Embed_0")().astype(x.dtype)[numbers, 0]
        coeff = Table(NUM_CHARGE_ROWS, half, name="Embed_1")().astype(x.dtype)[numbers]
        h = jax.nn.silu(dense(x, DenseParams(self.num_features, half, name="hirshfeld_ratios_dense_regression")()))
        u = dense(h, DenseParams(half, half, name="hirshfeld_ratios_dense_final")())
        return jnp.abs(base + jnp.sum(coeff * u, axis=-1) / math.sqrt(half))


def coulomb_kernel(d, sigma):
    return jax.scipy.special.erf(d / sigma) / d


def electrostatic_pair_energy(q_first, q_second, d, mask, sigma: float, lr_cutoff: float | None):
    """Damped, shifted-force, smoothly switched Coulomb energy per unordered pair (eV)."""
    v = coulomb_kernel(d, sigma)
    if lr_cutoff is None:
        shaped = v
    else:
        rc = lr_cutoff
        v_c = math.erf(rc / sigma) / rc
        dv_c = (2.0 * rc * math.exp(-(rc**2) / sigma**2) / (math.sqrt(math.pi) * sigma) - math.erf(rc / sigma)) / rc**2
        f = basis.smooth_switch(d, 0.45 * rc, rc)
        shaped = f * (v - v_c) + (1.0 - f) * (v - v_c - dv_c * (d - rc))
        mask = mask & (d < rc)
    energy = units.COULOMB_EV_ANGSTROM * q_first * q_second * shaped
    return jnp.where(mask, energy, 0.0)


def dispersion_pair_energy(z_first, z_second, h_first, h_second, d, mask, scale: float,
                           lr_cutoff: float | None, damping: float):
    """Pairwise C6/C8/C10 dispersion with Hirshfeld-scaled free-atom data, per unordered pair (eV)."""
    alpha_free, c6_free = (jnp.asarray(t, d.dtype) for t in free_atom_tables())
    alpha_i, alpha_j = alpha_free[z_first - 1] * h_first, alpha_free[z_second - 1] * h_second
    c6_i, c6_j = c6_free[z_first - 1] * h_first**2, c6_free[z_second - 1] * h_second**2
    alpha = 0.5 * (alpha_i + alpha_j)
    c6 = 2.0 * c6_i * c6_j * alpha_i * alpha_j / (alpha_i**2 * c6_j + alpha_j**2 * c6_i)
    r_vdw = units.FINE_STRUCTURE ** (-4.0 / 21.0) * alpha ** (1.0 / 7.0)
    b0, b1, b2, b3 = SIGMA_FIT
    sigma = b3 * r_vdw**3 + b2 * r_vdw**2 + b1 * r_vdw + b0
    gamma = 1.0 / (2.0 * sigma**2)
    c8 = 5.0 * c6 / gamma
    c10 = 245.0 / 8.0 * c6 / gamma**2
    rho = scale * 2.0 * 2.54 * alpha ** (1.0 / 7.0)
    r = d / units.BOHR_IN_ANGSTROM
    energy = -(c6 / (r**6 + rho**6) + c8 / (r**8 + rho**8) + c10 / (r**10 + rho**10))
    energy = energy * units.HARTREE_IN_EV
    if lr_cutoff is not None:
        energy = energy * basis.smooth_switch(d, lr_cutoff - damping, lr_cutoff)
        mask = mask & (d < lr_cutoff)
    return jnp.where(mask, energy, 0.0)


def gas_phase_long_range_energies(config, numbers, positions, charges, hirshfeld_ratios,
                                  lr_cutoff: float | None, dispersion_damping: float):
    """SO3LR's two long-range energies of gas-phase structures of one molecule, from given per-atom inputs.

    numbers (N,), positions (..., N, 3) Å, charges (..., N) e, hirshfeld_ratios (..., N): every unordered
    pair once, within lr_cutoff Å (None: all pairs), through the pair functions the model adds to its atom
    energies. Returns (electrostatic, dispersion), each (...,) in eV; a term the config lacks is 0. With the
    model's own charges and ratios these are the model's terms; with another model's, what the terms would
    be had the model predicted those, so the difference is the energy error that a term's inputs carry.
    """
    first, second = np.triu_indices(len(numbers), k=1)
    positions = jnp.asarray(positions)
    d = jnp.linalg.norm(positions[..., first, :] - positions[..., second, :], axis=-1)
    mask = jnp.ones(d.shape, dtype=bool)
    electrostatic = dispersion = jnp.zeros(d.shape[:-1], d.dtype)
    if config.electrostatics:
        q = jnp.asarray(charges, d.dtype)
        electrostatic = jnp.sum(electrostatic_pair_energy(q[..., first], q[..., second], d, mask,
                                                          config.electrostatic_sigma, lr_cutoff), axis=-1)
    if config.dispersion:
        z, h = jnp.asarray(numbers), jnp.asarray(hirshfeld_ratios, d.dtype)
        dispersion = jnp.sum(dispersion_pair_energy(z[first], z[second], h[..., first], h[..., second], d, mask,
                                                    config.dispersion_scale, lr_cutoff, dispersion_damping), axis=-1)
    return electrostatic, dispersion
