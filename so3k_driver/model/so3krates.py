"""SO3krates as pure Flax modules (spec sections 2.1-2.7, appendix B).

Parameter names mirror the authors' sparse parameter tree, so the published parameters load by
name. The graph is given as a *half* pair list: every unordered pair (a, b) once, with the
displacement r_b - r_a (+ periodic shift). Both directed edges a<-b and b<-a are evaluated from
it; the pair filters w_ab = w_ba are computed once per unordered pair, which halves the dominant
cost without changing a number (docs/performance.md).

Shapes: A atoms (all structures of a batch concatenated), P unordered pairs, F features,
M = sum(2l+1) Euclidean-variable components, |L| degrees, H heads. Units: Å, eV.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from .config import ModelConfig
from . import basis

NUM_ELEMENT_ROWS = 119  # embedding tables are indexed directly by Z (0..118)


class Graph(NamedTuple):
    """Model input for a batch of structures flattened into one graph.

    numbers: (A,) int atomic numbers. atom_structure: (A,) int index of each atom's structure.
    positions: (A, 3) Å (used for the dipole only; geometry enters through displacements).
    displacements: (P, 3) Å, r_b - r_a + shift for unordered short-range pair (a, b).
    pair_first, pair_second: (P,) int atom indices a and b. pair_mask: (P,) bool, False for padding.
    lr_*: the same for the long-range pair list (SO3LR only; empty arrays otherwise).
    total_charge, unpaired_electrons: (B,) per structure (SO3LR only).
    """

    numbers: jax.Array
    atom_structure: jax.Array
    positions: jax.Array
    displacements: jax.Array
    pair_first: jax.Array
    pair_second: jax.Array
    pair_mask: jax.Array
    lr_displacements: jax.Array
    lr_first: jax.Array
    lr_second: jax.Array
    lr_mask: jax.Array
    total_charge: jax.Array
    unpaired_electrons: jax.Array


def activation(name: str):
    return {"silu": jax.nn.silu, "identity": lambda x: x, "tanh": jnp.tanh, "gelu": jax.nn.gelu}[name]


class DenseParams(nn.Module):
    """The kernel (in, out) and bias (out) of a Flax ``Dense`` layer, returned rather than applied,
    so that several layers reading the same input can be fused into one matmul."""

    in_features: int
    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self):
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (self.in_features, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
        return kernel, bias


def dense(x: jax.Array, params) -> jax.Array:
    kernel, bias = params
    y = x @ kernel.astype(x.dtype)
    return y if bias is None else y + bias.astype(x.dtype)


class Table(nn.Module):
    """A lookup table indexed by integers (Flax ``Embed`` layout: param ``embedding``).

    Initialised with standard deviation 1/sqrt(features), the scale of the authors' initial weights
    (unit-variance embeddings made an untrained 3-layer model predict forces of ~1e4 eV/Å)."""

    num_rows: int
    features: int

    @nn.compact
    def __call__(self):
        init = nn.initializers.normal(1.0 / math.sqrt(self.features))
        return self.param("embedding", init, (self.num_rows, self.features))


class PairGeometry(NamedTuple):
    """Per-pair quantities that do not change between layers."""

    rbf: jax.Array  # (P, K)
    cutoff: jax.Array  # (P,), zero on padding
    harmonics: jax.Array  # (P, M) for the direction a -> b


class EuclideanAttention(nn.Module):
    """Euclidean attention block (spec 2.3): returns (dx, dchi) to be added to (x, chi)."""

    config: ModelConfig
    chi_is_zero: bool  # true in the first layer: the EV filter input is then exactly zero
    num_radial: int

    def setup(self):
        F, nL = self.config.num_features, len(self.config.degrees)
        self.radial_filter1_layer_1 = DenseParams(self.num_radial, F)
        self.radial_filter1_layer_2 = DenseParams(F, F)
        self.radial_filter2_layer_1 = DenseParams(self.num_radial, F)
        self.radial_filter2_layer_2 = DenseParams(F, F)
        self.spherical_filter1_layer_1 = DenseParams(nL, F // 4)
        self.spherical_filter1_layer_2 = DenseParams(F // 4, F)
        self.spherical_filter2_layer_1 = DenseParams(nL, F // 4)
        self.spherical_filter2_layer_2 = DenseParams(F // 4, F)
        H, dh, dl = self.config.num_heads, F // self.config.num_heads, F // nL
        self.Wq1 = self.param("Wq1", per_head_init(dh), (H, dh, dh))
        self.Wk1 = self.param("Wk1", per_head_init(dh), (H, dh, dh))
        self.Wv1 = self.param("Wv1", per_head_init(dh), (H, dh, dh))
        self.Wq2 = self.param("Wq2", per_head_init(dl), (nL, dl, dl))
        self.Wk2 = self.param("Wk2", per_head_init(dl), (nL, dl, dl))

    def __call__(self, x, chi, geometry: PairGeometry, first, second):
        cfg = self.config
        num_atoms, num_features = x.shape
        heads, num_degrees = cfg.num_heads, len(cfg.degrees)
        head_size, ev_head_size = num_features // heads, num_features // num_degrees
        act = activation(cfg.activation)
        qk_act = activation(cfg.qk_nonlinearity)
        dtype = x.dtype
        s1a, s1b = self.spherical_filter1_layer_1(), self.spherical_filter1_layer_2()
        s2a, s2b = self.spherical_filter2_layer_1(), self.spherical_filter2_layer_2()
        radial_w1, radial_w2 = radial_filters(
            geometry.rbf,
            [(self.radial_filter1_layer_1(), self.radial_filter1_layer_2()),
             (self.radial_filter2_layer_1(), self.radial_filter2_layer_2())],
            act,
        )

        if self.chi_is_zero:
            ev_invariants = jnp.zeros((1, num_degrees), dtype)
        else:
            contraction = jnp.asarray(basis.degree_contraction_matrix(cfg.degrees), dtype)
            diff = chi[second] - chi[first]
            ev_invariants = (diff * diff) @ contraction
        w1 = radial_w1 + dense(act(dense(ev_invariants, s1a)), s1b)
        w2 = radial_w2 + dense(act(dense(ev_invariants, s2a)), s2b)

        if cfg.message_normalization == "sqrt_num_features":
            norm1, norm2 = math.sqrt(head_size), math.sqrt(ev_head_size)
        else:
            norm1 = norm2 = float(cfg.avg_num_neighbors)

        # All per-atom projections in one matmul with block-diagonal matrices (XLA on CPU pays per
        # operation); each block is then gathered on its own, which measured faster than one wide
        # gather and a split (jaxlib 0.10: 0.85 x at 42 atoms, equal at 162).
        projection = jnp.concatenate(
            [block_diagonal(w) for w in (self.Wq1, self.Wk1, self.Wv1, self.Wq2, self.Wk2)], axis=1
        ).astype(dtype)
        projected = x @ projection  # (A, 5F): q1, k1, v1, q2, k2
        q1, k1, v1, q2, k2 = jnp.split(projected, 5, axis=1)
        blocks = [qk_act(q1), qk_act(k1), v1, qk_act(q2), qk_act(k2)]
        q1a, k1a, v1a, q2a, k2a = (block[first] for block in blocks)
        q1b, k1b, v1b, q2b, k2b = (block[second] for block in blocks)

        phi = geometry.cutoff[:, None]
        # Invariant branch: H heads, value = Wv x. alpha_ab: centre a, neighbour b.
        w1 = w1.reshape(-1, heads, head_size)
        alpha_ab = phi * jnp.sum((q1a * k1b).reshape(-1, heads, head_size) * w1, axis=-1) / norm1
        alpha_ba = phi * jnp.sum((q1b * k1a).reshape(-1, heads, head_size) * w1, axis=-1) / norm1
        # EV branch: one head per degree, value = Y_lm of the edge direction (Y(-r) = (-1)^l Y(r)).
        w2 = w2.reshape(-1, num_degrees, ev_head_size)
        beta_ab = phi * jnp.sum((q2a * k2b).reshape(-1, num_degrees, ev_head_size) * w2, axis=-1) / norm2
        beta_ba = phi * jnp.sum((q2b * k2a).reshape(-1, num_degrees, ev_head_size) * w2, axis=-1) / norm2
        index = basis.degree_index(cfg.degrees)
        y = geometry.harmonics
        y_reverse = y * jnp.asarray(basis.parity(cfg.degrees), dtype)
        to_a = jnp.concatenate(
            [(alpha_ab[..., None] * v1b.reshape(-1, heads, head_size)).reshape(-1, num_features),
             beta_ab[:, index] * y], axis=1)
        to_b = jnp.concatenate(
            [(alpha_ba[..., None] * v1a.reshape(-1, heads, head_size)).reshape(-1, num_features),
             beta_ba[:, index] * y_reverse], axis=1)
        # Two scatters, not one over the stacked [to_a; to_b]: the stacking fusion cost more than the
        # second scatter (jaxlib 0.10, CPU: 0.71-0.89 x the call at 42-162 atoms, equal for SO3LR).
        updates = jax.ops.segment_sum(to_a, first, num_atoms) + jax.ops.segment_sum(to_b, second, num_atoms)
        return updates[:, :num_features], updates[:, num_features:]


def per_head_init(head_size: int):
    return nn.initializers.normal(1.0 / math.sqrt(head_size))


def block_diagonal(per_head: jax.Array) -> jax.Array:
    """(heads, out, in) matrices applied as W·x -> one (heads*in, heads*out) matrix applied as x·B."""
    return jax.scipy.linalg.block_diag(*[w.T for w in per_head])


class ExchangeBlock(nn.Module):
    """Interaction block (spec 2.4): one linear layer on [x, c(chi)], the invariants gate chi per degree."""

    config: ModelConfig

    @nn.compact
    def __call__(self, x, chi):
        num_features, degrees = x.shape[-1], self.config.degrees
        contraction = jnp.asarray(basis.degree_contraction_matrix(degrees), x.dtype)
        y = jnp.concatenate([x, (chi * chi) @ contraction], axis=-1)
        width = num_features + len(degrees)
        y = dense(y, DenseParams(width, width, name="mlp_layer_2")())
        gate = y[:, num_features:][:, basis.degree_index(degrees)]
        return y[:, :num_features], gate * chi


class SO3kratesLayer(nn.Module):
    """One layer in the order of spec 2.5."""

    config: ModelConfig
    first_layer: bool

    def setup(self):
        cfg, F = self.config, self.config.num_features
        self.attention_block = EuclideanAttention(cfg, chi_is_zero=self.first_layer, num_radial=cfg.num_radial)
        self.exchange_block = ExchangeBlock(cfg)
        if cfg.layer_norm_1:
            self.layer_normalization_1 = nn.LayerNorm(epsilon=1e-6)
        if cfg.layer_norm_2:
            self.layer_normalization_2 = nn.LayerNorm(epsilon=1e-6)
        if cfg.residual_mlp_1:
            self.res_mlp_1_layer_1 = DenseParams(F, F)
            self.res_mlp_1_layer_2 = DenseParams(F, F)
        if cfg.residual_mlp_2:
            self.res_mlp_2_layer_1 = DenseParams(F, F)
            self.res_mlp_2_layer_2 = DenseParams(F, F)

    def __call__(self, x, chi, geometry, first, second):
        cfg = self.config
        act = activation(cfg.activation)
        dx, dchi = self.attention_block(x, chi, geometry, first, second)
        x, chi = x + dx, chi + dchi
        if cfg.layer_norm_1:
            x = self.layer_normalization_1(x)
        if cfg.residual_mlp_1:
            x = x + dense(act(dense(act(x), self.res_mlp_1_layer_1())), self.res_mlp_1_layer_2())
        dx, dchi = self.exchange_block(x, chi)
        x, chi = x + dx, chi + dchi
        if cfg.residual_mlp_2:
            x = x + dense(act(dense(act(x), self.res_mlp_2_layer_1())), self.res_mlp_2_layer_2())
        if cfg.layer_norm_2:
            x = self.layer_normalization_2(x)
        return x, chi


def radial_filters(rbf: jax.Array, parameters, act) -> list[jax.Array]:
    """Radial parts of pair filters that read the same basis (both branches of a layer).

    rbf: (P, K). parameters: per filter ((W1, b1), (W2, b2)) with W1 (K, F), W2 (F, F).
    Returns one (P, F) array per filter: W2 act(W1 rbf + b1) + b2, the first layers fused into one
    K -> n*F matmul.
    """
    n = len(parameters)
    dtype = rbf.dtype
    first_kernel = jnp.concatenate([p[0][0] for p in parameters], axis=1).astype(dtype)
    first_bias = jnp.concatenate([p[0][1] for p in parameters]).astype(dtype)
    hidden = act(rbf @ first_kernel + first_bias)
    width = hidden.shape[1] // n
    return [dense(hidden[:, k * width : (k + 1) * width], p[1]) for k, p in enumerate(parameters)]


def mask_padded_pairs(displacements: jax.Array, mask: jax.Array, cutoff: float) -> jax.Array:
    """Give padded pair slots (mask False) a displacement beyond ``cutoff`` (Å): their cutoff weight
    is exactly zero, their basis functions stay finite and no gradient flows through them."""
    far = jnp.asarray([2.0 * cutoff + 1.0, 0.0, 0.0], displacements.dtype)
    return jnp.where(mask[:, None], displacements, far)


def pair_geometry(cfg: ModelConfig, displacements, mask) -> tuple[PairGeometry, jax.Array]:
    """Distances, radial basis, cutoff and harmonics of the (padded) pair list. Returns (geometry, d)."""
    d = jnp.sqrt(jnp.sum(displacements * displacements, axis=-1))
    unit = displacements / d[:, None]
    geometry = PairGeometry(
        rbf=basis.radial_basis(cfg.radial_basis, d, cfg.num_radial, cfg.cutoff),
        cutoff=basis.cutoff_function(cfg.cutoff_fn, d, cfg.cutoff, cfg.cutoff_polynomial_degree)
        * mask.astype(d.dtype),
        harmonics=basis.spherical_harmonics(unit, cfg.degrees),
    )
    return geometry, d
