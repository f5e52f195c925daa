"""The training loss, on top of the same force function inference uses (``model.forces``).

    loss = w_E * MSE(E) [eV^2] + w_F * MSE(F components) [(eV/Å)^2] + w_S * MSE(stress components) [(eV/Å^3)^2]
           + sum_k w_k * MSE(per-atom target k)    (distillation: partial charges [e^2], Hirshfeld ratios [1])

Energies are averaged over scored structures, forces over the components of scored atoms, stress
over the 9 components of structures that have a stress label (periodic data), per-atom targets over
the atoms that carry them; a missing term contributes zero. The stress prediction is
sym(dE/d strain) / V, as ``Potential`` reports it.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..model.forces import Batch, energy_and_derivatives
from .batching import Labels
from .data import ATOM_TARGETS


def predict(model, params, batch: Batch, volume, with_stress: bool, with_extras: bool = False):
    """Energies (S,) eV, forces (A, 3) eV/Å and stress (S, 3, 3) eV/Å^3 (None without ``with_stress``);
    with ``with_extras`` also the model's other outputs (SO3LR: charges (A,) e, hirshfeld_ratios (A,)).

    S = batch_size + 1: the last structure slot holds the padding atoms."""
    num_structures = batch.total_charge.shape[0]
    out = energy_and_derivatives(model, params, batch, num_structures, with_stress)
    stress = None
    if with_stress:
        symmetric = 0.5 * (out.strain_derivative + jnp.swapaxes(out.strain_derivative, 1, 2))
        stress = symmetric / volume[:, None, None]
    if with_extras:
        return out.energies, out.forces, stress, out.extras
    return out.energies, out.forces, stress


def loss_and_metrics(model, params, batch: Batch, labels: Labels, energy_weight: float, force_weight: float,
                     stress_weight: float = 0.0, target_weights: dict[str, float] | None = None):
    """Weighted MSE loss and its parts (energy_mse eV^2, force_mse (eV/Å)^2, stress_mse (eV/Å^3)^2 and
    ``<name>_mse`` for each per-atom target of ``target_weights`` {name: weight > 0})."""
    with_stress = stress_weight > 0
    target_weights = {k: w for k, w in (target_weights or {}).items() if w > 0}
    energies, forces, stress, extras = predict(model, params, batch, labels.volume, with_stress, with_extras=True)
    s_mask = labels.structure_mask.astype(energies.dtype)
    a_mask = labels.atom_mask.astype(forces.dtype)[:, None]
    n_structures = jnp.maximum(s_mask.sum(), 1.0)
    n_components = jnp.maximum(3.0 * a_mask.sum(), 1.0)
    energy_mse = jnp.sum(((energies - labels.energies) * s_mask) ** 2) / n_structures
    force_mse = jnp.sum(((forces - labels.forces) * a_mask) ** 2) / n_components
    loss = energy_weight * energy_mse + force_weight * force_mse
    metrics = {"energy_mse": energy_mse, "force_mse": force_mse}
    if with_stress:
        t_mask = labels.stress_mask.astype(stress.dtype)[:, None, None]
        stress_mse = jnp.sum(((stress - labels.stress) * t_mask) ** 2) / jnp.maximum(9.0 * t_mask.sum(), 1.0)
        loss = loss + stress_weight * stress_mse
        metrics["stress_mse"] = stress_mse
    for name, weight in target_weights.items():
        output = ATOM_TARGETS[name]
        if output not in extras:
            raise ValueError(f"the model has no {output!r} output to train on the {name!r} labels "
                             "(an SO3LR-type model with electrostatics/dispersion has)")
        values, mask = labels.atom_targets[name]
        mask = mask.astype(forces.dtype)
        target_mse = jnp.sum(((extras[output] - values) * mask) ** 2) / jnp.maximum(mask.sum(), 1.0)
        loss = loss + weight * target_mse
        metrics[f"{name}_mse"] = target_mse
    return loss, {"loss": loss, **metrics}
