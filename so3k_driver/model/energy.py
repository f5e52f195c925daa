"""The top-level energy model: embeddings, SO3krates layers, readout and (for SO3LR) physics terms.

``EnergyModel.apply(params, graph, num_structures)`` returns a dict of per-atom energies (A,) in eV
and, where the model has them, partial charges (A,) in e, Hirshfeld ratios (A,) and dipoles (B, 3)
in e·Å. Parameter tree = the authors' sparse layout (appendix B/C of the spec).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from .config import ModelConfig
from . import so3lr
from .so3krates import (
    NUM_ELEMENT_ROWS,
    DenseParams,
    Graph,
    SO3kratesLayer,
    Table,
    activation,
    dense,
    pair_geometry,
)


class TypeEmbedding(nn.Module):
    num_features: int

    @nn.compact
    def __call__(self, numbers, dtype):
        return Table(NUM_ELEMENT_ROWS, self.num_features, name="Embed_0")().astype(dtype)[numbers]


class ChargeSpinBlock(nn.Module):
    num_features: int

    @nn.compact
    def __call__(self, numbers, psi, atom_structure, num_structures):
        return so3lr.ChargeSpinEmbedding(self.num_features, name="ChargeSpinEmbedSparse_0")(
            numbers, psi, atom_structure, num_structures
        )


class EnergyObservable(nn.Module):
    """Per-atom energy readout plus, for SO3LR, ZBL and electrostatics (authors' ``observables_0``)."""

    config: ModelConfig
    lr_cutoff: float | None

    @nn.compact
    def __call__(self, x, graph: Graph, distances, long_range, num_structures):
        cfg = self.config
        num_atoms, F = x.shape
        act = activation(cfg.energy_activation)
        h = act(dense(x, DenseParams(F, cfg.energy_regression_dim, name="energy_dense_regression")()))
        e = dense(h, DenseParams(cfg.energy_regression_dim, 1, name="energy_dense_final")())[:, 0]
        if cfg.learn_atomic_scales:
            scales = self.param("atomic_scales", nn.initializers.ones, (NUM_ELEMENT_ROWS,))
            e = e * scales.astype(x.dtype)[graph.numbers]
        if cfg.learn_atomic_shifts:
            shifts = self.param("energy_offset", nn.initializers.zeros, (NUM_ELEMENT_ROWS,))
            e = e + shifts.astype(x.dtype)[graph.numbers]
        outputs = {"atom_energies": e}
        a, b = graph.pair_first, graph.pair_second
        if cfg.zbl_repulsion:
            zbl = so3lr.ZBLRepulsion(cfg.cutoff, cfg.cutoff_fn, name="zbl_repulsion")(
                graph.numbers[a], graph.numbers[b], distances, graph.pair_mask
            )
            outputs["atom_energies"] = outputs["atom_energies"] + so3lr.pair_to_atoms(zbl, a, b, num_atoms)
        if cfg.electrostatics:
            charges = ChargeHead(F, name="electrostatic_energy")(
                x, graph.numbers, graph.total_charge, graph.atom_structure, num_structures
            )
            elec = so3lr.electrostatic_pair_energy(
                *long_range.ends(charges), long_range.distances, long_range.mask, cfg.electrostatic_sigma,
                self.lr_cutoff,
            )
            outputs["atom_energies"] = outputs["atom_energies"] + long_range.to_atoms(elec)
            outputs["charges"] = charges
            outputs["dipole"] = jax.ops.segment_sum(
                charges[:, None] * graph.positions, graph.atom_structure, num_structures
            )
        return outputs


class ChargeHead(nn.Module):
    num_features: int

    @nn.compact
    def __call__(self, x, numbers, total_charge, atom_structure, num_structures):
        return so3lr.PartialCharges(self.num_features, name="partial_charges")(
            x, numbers, total_charge, atom_structure, num_structures
        )


class EnergyModel(nn.Module):
    """SO3krates / SO3LR energy model.

    config: the hyperparameters. lr_cutoff (Å, or None for all pairs) and dispersion_damping (Å)
    are SO3LR run-time options; they are ignored by plain SO3krates models.
    dense_long_range: take the long-range pairs as every atom pair within each structure, as dense
    (S, N, N) arrays (:class:`~so3k_driver.model.so3lr.DensePairs`), instead of the graph's lr_* list.
    Only for gas-phase batches of S slots of N = A / S atoms each; lr_cutoff still applies.
    """

    config: ModelConfig
    lr_cutoff: float | None = 12.0
    dispersion_damping: float = 2.0
    dense_long_range: bool = False

    @nn.compact
    def __call__(self, graph: Graph, num_structures: int):
        cfg = self.config
        dtype = graph.displacements.dtype
        F = cfg.num_features
        x = TypeEmbedding(F, name="feature_embeddings_0")(graph.numbers, dtype)
        embeddings = [x]
        if cfg.charge_embedding:
            embeddings.append(ChargeSpinBlock(F, name="feature_embeddings_1")(
                graph.numbers, graph.total_charge.astype(dtype), graph.atom_structure, num_structures))
        if cfg.spin_embedding:
            embeddings.append(ChargeSpinBlock(F, name="feature_embeddings_2")(
                graph.numbers, graph.unpaired_electrons.astype(dtype), graph.atom_structure, num_structures))
        if len(embeddings) > 1:
            x = sum(embeddings) / math.sqrt(len(embeddings))

        num_components = sum(2 * l + 1 for l in cfg.degrees)
        chi = jnp.zeros((x.shape[0], num_components), dtype)
        geometry, distances = pair_geometry(cfg, graph.displacements, graph.pair_mask)
        for t in range(cfg.num_layers):
            layer = SO3kratesLayer(cfg, first_layer=(t == 0), name=f"layers_{t}")
            x, chi = layer(x, chi, geometry, graph.pair_first, graph.pair_second)

        long_range = None
        if cfg.needs_long_range_pairs and self.dense_long_range:
            long_range = so3lr.DensePairs.build(graph.positions, num_structures)
        elif cfg.needs_long_range_pairs:
            long_range = so3lr.ListedPairs(graph.lr_first, graph.lr_second,
                                           jnp.sqrt(jnp.sum(graph.lr_displacements**2, axis=-1)),
                                           graph.lr_mask, x.shape[0])
        outputs = EnergyObservable(cfg, self.lr_cutoff, name="observables_0")(
            x, graph, distances, long_range, num_structures
        )
        if cfg.dispersion:
            hirshfeld = so3lr.HirshfeldRatios(F, name="observables_2")(x, graph.numbers)
            disp = so3lr.dispersion_pair_energy(
                *long_range.ends(graph.numbers), *long_range.ends(hirshfeld), long_range.distances,
                long_range.mask, cfg.dispersion_scale, self.lr_cutoff, self.dispersion_damping,
            )
            outputs["atom_energies"] = outputs["atom_energies"] + long_range.to_atoms(disp)
            outputs["hirshfeld_ratios"] = hirshfeld
        return outputs

