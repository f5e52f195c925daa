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
import numpy as np

from ..config import ModelConfig
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
    """A lookup table indexed by integers (Flax ``Embed`` layout: param ``embedding``)."""

    num_rows: int
    features: int
    init_stddev: float = 1.0

    @nn.compact
    def __call__(self):
        return self.param("embedding", nn.initializers.normal(self.init_stddev), (self.num_rows, self.features))


def per_head(module: nn.Module, name: str, num_heads: int, head_size: int, x: jax.Array) -> jax.Array:
    """Declare a per-head matrix named ``name`` directly on ``module`` (authors' flat layout) and apply it."""
    w = module.param(name, nn.initializers.normal(1.0 / math.sqrt(head_size)), (num_heads, head_size, head_size))
    xh = x.reshape(x.shape[0], num_heads, head_size)
    return jnp.einsum("ahf,hgf->ahg", xh, w.astype(x.dtype))


class PairGeometry(NamedTuple):
    """Per-pair quantities that do not change between layers."""

    rbf: jax.Array  # (P, K)
    cutoff: jax.Array  # (P,), zero on padding
    harmonics: jax.Array  # (P, M) for the direction a -> b


class EuclideanAttention(nn.Module):
    """Euclidean attention block (spec 2.3): returns (dx, dchi) to be added to (x, chi)."""

    config: ModelConfig
    chi_is_zero: bool  # true in the first layer: the EV filter input is then exactly zero

    @nn.compact
    def __call__(self, x, chi, geometry: PairGeometry, first, second):
        cfg = self.config
        num_atoms, num_features = x.shape
        heads, num_degrees = cfg.num_heads, len(cfg.degrees)
        head_size, ev_head_size = num_features // heads, num_features // num_degrees
        act = activation(cfg.activation)
        qk_act = activation(cfg.qk_nonlinearity)
        dtype = x.dtype
        K = geometry.rbf.shape[-1]

        # Pair filters, computed once per unordered pair (they are symmetric in a and b).
        r1a = DenseParams(K, num_features, name="radial_filter1_layer_1")()
        r1b = DenseParams(num_features, num_features, name="radial_filter1_layer_2")()
        r2a = DenseParams(K, num_features, name="radial_filter2_layer_1")()
        r2b = DenseParams(num_features, num_features, name="radial_filter2_layer_2")()
        s1a = DenseParams(num_degrees, num_features // 4, name="spherical_filter1_layer_1")()
        s1b = DenseParams(num_features // 4, num_features, name="spherical_filter1_layer_2")()
        s2a = DenseParams(num_degrees, num_features // 4, name="spherical_filter2_layer_1")()
        s2b = DenseParams(num_features // 4, num_features, name="spherical_filter2_layer_2")()

        # Both branches read the same radial basis: one K -> 2F matmul.
        fused_kernel = jnp.concatenate([r1a[0], r2a[0]], axis=1)
        fused_bias = jnp.concatenate([r1a[1], r2a[1]])
        hidden = act(dense(geometry.rbf, (fused_kernel, fused_bias)))
        w1 = dense(hidden[:, :num_features], r1b)
        w2 = dense(hidden[:, num_features:], r2b)

        if self.chi_is_zero:
            ev_invariants = jnp.zeros((1, num_degrees), dtype)
        else:
            contraction = jnp.asarray(basis.degree_contraction_matrix(cfg.degrees), dtype)
            diff = chi[second] - chi[first]
            ev_invariants = (diff * diff) @ contraction
        w1 = w1 + dense(act(dense(ev_invariants, s1a)), s1b)
        w2 = w2 + dense(act(dense(ev_invariants, s2a)), s2b)

        if cfg.message_normalization == "sqrt_num_features":
            norm1, norm2 = math.sqrt(head_size), math.sqrt(ev_head_size)
        else:
            norm1 = norm2 = float(cfg.avg_num_neighbors)

        # Invariant branch: H heads, value = Wv x.
        q1 = qk_act(per_head(self, "Wq1", heads, head_size, x))
        k1 = qk_act(per_head(self, "Wk1", heads, head_size, x))
        v1 = per_head(self, "Wv1", heads, head_size, x)
        w1 = w1.reshape(-1, heads, head_size)
        phi = geometry.cutoff[:, None]
        alpha_ab = phi * jnp.sum(q1[first] * w1 * k1[second], axis=-1) / norm1  # centre a, neighbour b
        alpha_ba = phi * jnp.sum(q1[second] * w1 * k1[first], axis=-1) / norm1  # centre b, neighbour a
        messages = jnp.concatenate(
            [alpha_ab[..., None] * v1[second], alpha_ba[..., None] * v1[first]], axis=0
        ).reshape(-1, num_features)
        centres = jnp.concatenate([first, second])
        dx = jax.ops.segment_sum(messages, centres, num_segments=num_atoms)

        # EV branch: one head per degree, value = Y_lm of the edge direction.
        q2 = qk_act(per_head(self, "Wq2", num_degrees, ev_head_size, x))
        k2 = qk_act(per_head(self, "Wk2", num_degrees, ev_head_size, x))
        w2 = w2.reshape(-1, num_degrees, ev_head_size)
        beta_ab = phi * jnp.sum(q2[first] * w2 * k2[second], axis=-1) / norm2
        beta_ba = phi * jnp.sum(q2[second] * w2 * k2[first], axis=-1) / norm2
        index = basis.degree_index(cfg.degrees)
        parity = jnp.asarray(basis.parity(cfg.degrees), dtype)
        y = geometry.harmonics
        ev_messages = jnp.concatenate([beta_ab[:, index] * y, beta_ba[:, index] * (y * parity)], axis=0)
        dchi = jax.ops.segment_sum(ev_messages, centres, num_segments=num_atoms)
        return dx, dchi


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

    @nn.compact
    def __call__(self, x, chi, geometry, first, second):
        cfg = self.config
        act = activation(cfg.activation)
        F = x.shape[-1]
        dx, dchi = EuclideanAttention(cfg, chi_is_zero=self.first_layer, name="attention_block")(
            x, chi, geometry, first, second
        )
        x, chi = x + dx, chi + dchi
        if cfg.layer_norm_1:
            x = nn.LayerNorm(epsilon=1e-6, name="layer_normalization_1")(x)
        if cfg.residual_mlp_1:
            h = dense(act(x), DenseParams(F, F, name="res_mlp_1_layer_1")())
            x = x + dense(act(h), DenseParams(F, F, name="res_mlp_1_layer_2")())
        dx, dchi = ExchangeBlock(cfg, name="exchange_block")(x, chi)
        x, chi = x + dx, chi + dchi
        if cfg.residual_mlp_2:
            h = dense(act(x), DenseParams(F, F, name="res_mlp_2_layer_1")())
            x = x + dense(act(h), DenseParams(F, F, name="res_mlp_2_layer_2")())
        if cfg.layer_norm_2:
            x = nn.LayerNorm(epsilon=1e-6, name="layer_normalization_2")(x)
        return x, chi


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
