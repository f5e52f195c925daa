"""Evaluate a model on labelled data: errors (eV, eV/atom, eV/Å) and an optional parity plot."""

from __future__ import annotations

import numpy as np

from .data import UNRECORDED, load_dataset, resolve_lr_cutoff
from .evaluation import error_metrics, force_errors_by_element


def predict_dataset(potential, data):
    """Energies (S,) eV and forces list of (N_i, 3) eV/Å; same-size structures evaluated in groups."""
    energies = np.zeros(len(data))
    forces: list = [None] * len(data)
    groups: dict[tuple, list[int]] = {}
    for i, n in enumerate(data.numbers):
        groups.setdefault(tuple(int(z) for z in n), []).append(i)
    for numbers, indices in groups.items():
        for start in range(0, len(indices), 16):
            chunk = indices[start:start + 16]
            results = potential.evaluate(np.asarray(numbers), np.stack([data.positions[i] for i in chunk]))
            for k, i in enumerate(chunk):
                energies[i] = results.energy[k]
                forces[i] = results.forces[k]
    return energies, forces


def test_model(model: str, data_path: str, energy_unit: str = "eV", dtype: str | None = None,
               plot: str | None = None, lr_cutoff: float | None | str = UNRECORDED) -> dict:
    """Energy and force errors of model on labelled data; lr_cutoff: Å of an SO3LR-type model's
    long-range terms (None = all pairs, as gas-phase labels of SO3LR are made; by default the setting
    the labels record, else 12 Å). The metrics name the cutoff used (``lr_cutoff_A``: Å or "all") and
    carry ``warnings`` (one line each) where it differs from the labels'."""
    from ..evaluation.frames import lr_cutoff_record
    from ..evaluation.potential import Potential

    data = load_dataset(data_path, energy_unit)
    lr_cutoff, warning = resolve_lr_cutoff(lr_cutoff, data)
    potential = Potential.load(model, dtype=dtype, lr_cutoff=lr_cutoff)
    energies, forces = predict_dataset(potential, data)
    metrics = error_metrics(energies, data.energies, [len(n) for n in data.numbers], forces, data.forces)
    metrics["forces_by_element"] = force_errors_by_element(data.numbers, forces, data.forces)
    metrics.update(model=model, data=data_path, units={"energy": "eV", "forces": "eV/angstrom"},
                   warnings=[warning] if warning else [])
    if potential.config.needs_long_range_pairs:
        metrics["lr_cutoff_A"] = lr_cutoff_record(potential.lr_cutoff)
    if plot:
        from .plots import parity_plot

        parity_plot(data.energies, energies, data.forces, forces, plot, title=f"{model} on {data_path}")
    return metrics
