"""Energies, forces and strain derivatives of any energy model on a padded batch: one pure function.

Inference (``evaluation.Potential``), training (``training.loss``) and parameter initialisation all go
through :func:`energy_and_derivatives`, so what is trained is exactly what is served, including the
SO3LR long-range pairs, periodic shifts and the stress.

A batch is S structure slots flattened into one graph of A atom slots (see :class:`Batch`):

    E_s   = sum_{a in s} e_a                                  per-structure energy, eV
    F_a   = -dE/dr_a                                          eV/Å
    W_s   = dE_s/d(epsilon_s) at epsilon = 0                  strain derivative, eV (3, 3)

where every position and pair displacement of structure s is deformed as r -> r (1 + epsilon_s).
The virial is -sym(W_s) and the stress sym(W_s) / V_s (conventions.md). Padded atom slots must
belong to a structure slot whose energy is ignored; padded pair slots have ``mask`` False and are
moved beyond every cutoff (:func:`mask_padded_pairs`), so they contribute nothing, gradients included.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .config import ModelConfig
from .energy import EnergyModel
from .so3krates import Graph, mask_padded_pairs


class Batch(NamedTuple):
    """A padded batch of S structure slots, A atom slots, P short-range and Q long-range pair slots.

    numbers: (A,) int32 atomic numbers. atom_structure: (A,) int32 structure slot of each atom.
    positions: (A, 3) Å. pair_first, pair_second: (P,) int32 atoms a, b of each unordered pair, whose
    displacement is r_b - r_a + shift. pair_shifts: (P, 3) Å periodic image shift. pair_structure:
    (P,) int32 structure slot of the pair. pair_mask: (P,) bool, False for padding. lr_*: the same
    for SO3LR's long-range pairs (Q = 0 for models without them). total_charge, unpaired_electrons:
    (S,) e and electron count (SO3LR's embeddings; ignored by plain SO3krates).
    """

    numbers: jax.Array
    atom_structure: jax.Array
    positions: jax.Array
    pair_first: jax.Array
    pair_second: jax.Array
    pair_shifts: jax.Array
    pair_structure: jax.Array
    pair_mask: jax.Array
    lr_first: jax.Array
    lr_second: jax.Array
    lr_shifts: jax.Array
    lr_structure: jax.Array
    lr_mask: jax.Array
    total_charge: jax.Array
    unpaired_electrons: jax.Array


class Derivatives(NamedTuple):
    """energies (S,) eV; forces (A, 3) eV/Å; strain_derivative (S, 3, 3) eV or None; extras: the
    model's other outputs (SO3LR: charges (A,) e, hirshfeld_ratios (A,), dipole (S, 3) e·Å)."""

    energies: jax.Array
    forces: jax.Array
    strain_derivative: jax.Array | None
    extras: dict


def empty_long_range_pairs(dtype) -> dict[str, np.ndarray]:
    """The ``lr_*`` fields of a :class:`Batch` for a model without long-range pairs (Q = 0)."""
    empty = np.zeros(0, np.int32)
    return {"lr_first": empty, "lr_second": empty, "lr_shifts": np.zeros((0, 3), dtype),
            "lr_structure": empty, "lr_mask": np.zeros(0, bool)}


def largest_cutoff(model: EnergyModel) -> float:
    """The largest pair distance the model looks at (Å): padded pairs are placed beyond it."""
    long_range = model.lr_cutoff if model.config.needs_long_range_pairs else None
    return max(model.config.cutoff, long_range or 0.0)


def batch_graph(model: EnergyModel, batch: Batch, positions: jax.Array, deformation: jax.Array | None) -> Graph:
    """The model's graph for ``batch`` at ``positions`` (A, 3), each structure deformed by
    ``deformation`` (S, 3, 3) = 1 + strain when given."""
    far = largest_cutoff(model)

    def displacements(first, second, shifts, owner, mask):
        d = positions[second] - positions[first] + shifts
        if deformation is not None:
            d = jnp.einsum("pi,pij->pj", d, deformation[owner])
        return mask_padded_pairs(d, mask, far)

    if deformation is not None:
        positions_out = jnp.einsum("ai,aij->aj", positions, deformation[batch.atom_structure])
    else:
        positions_out = positions
    return Graph(
        numbers=batch.numbers,
        atom_structure=batch.atom_structure,
        positions=positions_out,
        displacements=displacements(batch.pair_first, batch.pair_second, batch.pair_shifts,
                                    batch.pair_structure, batch.pair_mask),
        pair_first=batch.pair_first,
        pair_second=batch.pair_second,
        pair_mask=batch.pair_mask,
        lr_displacements=displacements(batch.lr_first, batch.lr_second, batch.lr_shifts,
                                       batch.lr_structure, batch.lr_mask),
        lr_first=batch.lr_first,
        lr_second=batch.lr_second,
        lr_mask=batch.lr_mask,
        total_charge=batch.total_charge,
        unpaired_electrons=batch.unpaired_electrons,
    )


def energy_and_derivatives(model: EnergyModel, params, batch: Batch, num_structures: int,
                           with_stress: bool = False) -> Derivatives:
    """Per-structure energies, forces and (when ``with_stress``) strain derivatives of ``batch``.

    Pure and differentiable in ``params`` (training takes gradients of a loss built on it);
    ``num_structures`` (S) and ``with_stress`` must be static under ``jax.jit``.
    """
    if num_structures < 1:
        raise ValueError(f"num_structures must be >= 1, got {num_structures}")

    def total_energy(positions, strain):
        deformation = jnp.eye(3, dtype=positions.dtype) + strain if with_stress else None
        outputs = model.apply(params, batch_graph(model, batch, positions, deformation), num_structures)
        energies = jax.ops.segment_sum(outputs["atom_energies"], batch.atom_structure, num_structures)
        extras = {k: v for k, v in outputs.items() if k != "atom_energies"}
        return jnp.sum(energies), (energies, extras)

    strain = jnp.zeros((num_structures, 3, 3), batch.positions.dtype)
    if with_stress:
        (_, (energies, extras)), (gradient, strain_derivative) = jax.value_and_grad(
            total_energy, argnums=(0, 1), has_aux=True)(batch.positions, strain)
    else:
        (_, (energies, extras)), gradient = jax.value_and_grad(total_energy, has_aux=True)(batch.positions, strain)
        strain_derivative = None
    return Derivatives(energies, -gradient, strain_derivative, extras)


def committee_energy_and_derivatives(model: EnergyModel, stacked_params, batch: Batch, num_structures: int,
                                     with_stress: bool = False) -> Derivatives:
    """A committee of M parameter sets of one architecture (every leaf of ``stacked_params`` has a
    leading axis M), evaluated in one vectorised call.

    Returns the committee mean as energies, forces and strain derivative (and mean extras), plus the
    members in ``extras``: ``committee_energies`` (S, M) eV, ``committee_forces`` (A, M, 3) eV/Å and,
    with stress, ``committee_strain_derivatives`` (S, M, 3, 3) eV.
    """
    members = jax.vmap(lambda p: energy_and_derivatives(model, p, batch, num_structures, with_stress))(stacked_params)
    extras = {k: v.mean(axis=0) for k, v in members.extras.items()}
    extras["committee_energies"] = members.energies.T
    extras["committee_forces"] = jnp.moveaxis(members.forces, 0, 1)
    strain = None
    if with_stress:
        strain = members.strain_derivative.mean(axis=0)
        extras["committee_strain_derivatives"] = jnp.moveaxis(members.strain_derivative, 0, 1)
    return Derivatives(members.energies.mean(axis=0), members.forces.mean(axis=0), strain, extras)


def stack_parameters(members: list[dict]) -> dict:
    """One parameter tree whose leaves stack the M members' leaves along a new leading axis."""
    if len(members) < 2:
        raise ValueError(f"a committee needs at least 2 members, got {len(members)}")
    shapes = [jax.tree.map(np.shape, m) for m in members]
    if any(s != shapes[0] for s in shapes[1:]):
        raise ValueError("committee members must share one architecture (their parameter shapes differ)")
    return jax.tree.map(lambda *leaves: np.stack([np.asarray(x) for x in leaves]), *members)


def two_atom_batch(config: ModelConfig) -> Batch:
    """The smallest batch the model accepts (two atoms of the first species, 1 Å apart, one pair
    in each list): enough to create every parameter, whose shapes do not depend on the batch."""
    pair = np.zeros(1, np.int32)
    one = np.ones(1, bool)
    return Batch(
        numbers=np.full(2, config.species[0], np.int32), atom_structure=np.zeros(2, np.int32),
        positions=np.asarray([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], np.float32),
        pair_first=pair, pair_second=pair + 1, pair_shifts=np.zeros((1, 3), np.float32), pair_structure=pair,
        pair_mask=one, lr_first=pair, lr_second=pair + 1, lr_shifts=np.zeros((1, 3), np.float32),
        lr_structure=pair, lr_mask=one, total_charge=np.zeros(1, np.float32),
        unpaired_electrons=np.zeros(1, np.float32),
    )


def initial_parameters(config: ModelConfig, seed: int = 0, lr_cutoff: float | None = 12.0) -> dict:
    """Freshly initialised parameters ``{'params': ...}`` for ``config`` (PRNG key from ``seed``)."""
    model = EnergyModel(config, lr_cutoff=lr_cutoff)
    batch = two_atom_batch(config)
    return model.init(jax.random.PRNGKey(seed), batch_graph(model, batch, jnp.asarray(batch.positions), None), 1)
