"""Energies (eV) and forces (eV/Å) of a padded batch, differentiable w.r.t. the parameters.

Padded pair slots are handled as in the potential (``mask_padded_pairs``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..model.so3krates import Graph, mask_padded_pairs


def batch_graph(batch, positions, cutoff: float) -> Graph:
    first, second, mask = batch["pair_first"], batch["pair_second"], batch["pair_mask"]
    displacements = mask_padded_pairs(positions[second] - positions[first], mask, cutoff)
    num_structures = batch["energies"].shape[0]
    empty_index = jnp.zeros(0, jnp.int32)
    return Graph(
        numbers=batch["numbers"], atom_structure=batch["atom_structure"], positions=positions,
        displacements=displacements, pair_first=first, pair_second=second, pair_mask=mask,
        lr_displacements=jnp.zeros((0, 3), positions.dtype), lr_first=empty_index, lr_second=empty_index,
        lr_mask=jnp.zeros(0, bool), total_charge=jnp.zeros(num_structures, positions.dtype),
        unpaired_electrons=jnp.zeros(num_structures, positions.dtype),
    )


def energies_and_forces(module, params, batch, cutoff: float):
    """Per-structure energies (B+1,) eV and forces (A, 3) eV/Å; the last structure slot is padding."""
    num_structures = batch["energies"].shape[0]

    def total_energy(positions):
        graph = batch_graph(batch, positions, cutoff)
        atom_energies = module.apply(params, graph, num_structures)["atom_energies"]
        energies = jax.ops.segment_sum(atom_energies, batch["atom_structure"], num_structures)
        return jnp.sum(energies), energies

    (_, energies), gradient = jax.value_and_grad(total_energy, has_aux=True)(batch["positions"])
    return energies, -gradient


def loss_and_metrics(module, params, batch, cutoff: float, energy_weight: float, force_weight: float):
    """Weighted MSE loss: energy per structure (eV²) and force components (eV²/Å²)."""
    energies, forces = energies_and_forces(module, params, batch, cutoff)
    s_mask = batch["structure_mask"].astype(energies.dtype)
    a_mask = batch["atom_mask"].astype(forces.dtype)[:, None]
    n_structures = jnp.maximum(s_mask.sum(), 1.0)
    n_components = jnp.maximum(3.0 * a_mask.sum(), 1.0)
    e_err = (energies - batch["energies"]) * s_mask
    f_err = (forces - batch["forces"]) * a_mask
    energy_mse = jnp.sum(e_err ** 2) / n_structures
    force_mse = jnp.sum(f_err ** 2) / n_components
    loss = energy_weight * energy_mse + force_weight * force_mse
    return loss, {"loss": loss, "energy_mse": energy_mse, "force_mse": force_mse}
