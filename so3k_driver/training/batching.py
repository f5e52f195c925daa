"""Padded training batches with fixed capacities, so a training run compiles once.

Every batch holds ``batch_size`` structure slots plus one, ``batch_size * max_atoms`` atom slots and
``batch_size * max_pairs`` pair slots (max over the whole data set), for the short-range pairs and,
for SO3LR-type models, the long-range pairs. Padding atoms belong to the extra, never-scored
structure slot (index ``batch_size``); padding pairs are masked. The model input is the same
:class:`~so3k_driver.model.forces.Batch` that inference uses, so periodic shifts, charges and the
strain derivative (stress) are trained exactly as they are served. Units: Å, eV, eV/Å, eV/Å^3.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from ..evaluation.neighbors import PairList, all_pairs, half_pair_list
from ..model.forces import Batch
from .data import Dataset


class Labels(NamedTuple):
    """Targets of a padded batch: energies (S,) eV, forces (A, 3) eV/Å, stress (S, 3, 3) eV/Å^3;
    masks say which slots are scored; volume (S,) Å^3 (1 for gas-phase and padding slots).
    atom_targets: per-atom teacher outputs by name -> (values (A,), mask (A,) bool), e.g. partial charges."""

    energies: np.ndarray
    structure_mask: np.ndarray
    forces: np.ndarray
    atom_mask: np.ndarray
    stress: np.ndarray
    stress_mask: np.ndarray
    volume: np.ndarray
    atom_targets: dict = {}


@dataclasses.dataclass
class PairCache:
    """Half pair lists of every structure, computed once: short-range within ``cutoff`` (Å) and, when
    the model needs them, long-range within ``lr_cutoff`` (Å; None = all pairs, gas phase only)."""

    short: list[PairList]
    long: list[PairList] | None

    @classmethod
    def build(cls, data: Dataset, cutoff: float, long_range: bool = False,
              lr_cutoff: float | None = None) -> "PairCache":
        short, long = [], [] if long_range else None
        for s, positions in enumerate(data.positions):
            cell, pbc = data.cells[s], data.pbc[s]
            short.append(half_pair_list(positions, cutoff, cell, pbc))
            if long_range:
                if lr_cutoff is None:
                    if pbc.any():
                        raise ValueError(f"{data.source} structure {s} is periodic: SO3LR-type training "
                                         "needs a finite lr_cutoff (Å) for periodic data")
                    long.append(all_pairs(len(positions)))
                else:
                    long.append(half_pair_list(positions, lr_cutoff, cell, pbc))
        return cls(short, long)

    @property
    def max_pairs(self) -> int:
        return max(len(p) for p in self.short)

    @property
    def max_long_range_pairs(self) -> int:
        return max(len(p) for p in self.long) if self.long is not None else 0


@dataclasses.dataclass(frozen=True)
class Capacities:
    batch_size: int
    atoms: int
    pairs: int
    long_range_pairs: int = 0

    @classmethod
    def for_data(cls, batch_size: int, max_atoms: int, max_pairs: int, max_long_range_pairs: int = 0) -> "Capacities":
        return cls(batch_size, batch_size * max_atoms, batch_size * max(max_pairs, 1),
                   batch_size * max_long_range_pairs)


def _pair_slots(lists: list[PairList] | None, indices, offsets, capacity: int) -> dict[str, np.ndarray]:
    """first, second, shifts, structure, mask arrays of ``capacity`` slots for structures ``indices``."""
    first = np.zeros(capacity, np.int32)
    second = np.zeros(capacity, np.int32)
    shifts = np.zeros((capacity, 3), np.float32)
    owner = np.zeros(capacity, np.int32)
    mask = np.zeros(capacity, bool)
    start = 0
    for slot, i in enumerate(indices if lists is not None else []):
        pairs = lists[i]
        stop = start + len(pairs)
        first[start:stop] = pairs.first + offsets[slot]
        second[start:stop] = pairs.second + offsets[slot]
        shifts[start:stop] = pairs.shifts
        owner[start:stop] = slot
        mask[start:stop] = True
        start = stop
    return {"first": first, "second": second, "shifts": shifts, "structure": owner, "mask": mask}


def make_batch(data: Dataset, pairs: PairCache, indices, cap: Capacities) -> tuple[Batch, Labels]:
    """Model inputs and targets for the structures ``indices`` (at most ``cap.batch_size`` of them)."""
    if len(indices) > cap.batch_size:
        raise ValueError(f"{len(indices)} structures do not fit a batch of {cap.batch_size}")
    B = cap.batch_size
    numbers = np.ones(cap.atoms, np.int32)  # padding atoms: hydrogen, no pairs, unscored
    positions = np.zeros((cap.atoms, 3), np.float32)
    forces = np.zeros((cap.atoms, 3), np.float32)
    atom_structure = np.full(cap.atoms, B, np.int32)
    atom_mask = np.zeros(cap.atoms, bool)
    energies = np.zeros(B + 1, np.float32)
    structure_mask = np.zeros(B + 1, bool)
    stress = np.zeros((B + 1, 3, 3), np.float32)
    stress_mask = np.zeros(B + 1, bool)
    volume = np.ones(B + 1, np.float32)
    total_charge = np.zeros(B + 1, np.float32)
    unpaired = np.zeros(B + 1, np.float32)
    targets = {name: (np.zeros(cap.atoms, np.float32), np.zeros(cap.atoms, bool)) for name in data.atom_targets}
    offsets = []
    a0 = 0
    for slot, i in enumerate(indices):
        n = len(data.numbers[i])
        numbers[a0:a0 + n] = data.numbers[i]
        positions[a0:a0 + n] = data.positions[i]
        forces[a0:a0 + n] = data.forces[i]
        atom_structure[a0:a0 + n] = slot
        atom_mask[a0:a0 + n] = True
        energies[slot] = data.energies[i]
        structure_mask[slot] = True
        if data.pbc[i].any():
            volume[slot] = abs(np.linalg.det(data.cells[i]))
            if np.isfinite(data.stress[i]).all():
                stress[slot] = data.stress[i]
                stress_mask[slot] = True
        total_charge[slot] = data.total_charge[i]
        unpaired[slot] = data.unpaired_electrons[i]
        for name, (values, mask) in targets.items():
            labelled = np.isfinite(data.atom_targets[name][i])
            values[a0:a0 + n] = np.where(labelled, data.atom_targets[name][i], 0.0)
            mask[a0:a0 + n] = labelled
        offsets.append(a0)
        a0 += n
    short = _pair_slots(pairs.short, indices, offsets, cap.pairs)
    long = _pair_slots(pairs.long, indices, offsets, cap.long_range_pairs)
    batch = Batch(
        numbers=numbers, atom_structure=atom_structure, positions=positions,
        **{f"pair_{k}": v for k, v in short.items()}, **{f"lr_{k}": v for k, v in long.items()},
        total_charge=total_charge, unpaired_electrons=unpaired,
    )
    return batch, Labels(energies, structure_mask, forces, atom_mask, stress, stress_mask, volume, targets)


def batch_order(count: int, batch_size: int, seed: int | None) -> list[np.ndarray]:
    """Index chunks for one epoch; shuffled with ``seed`` (None = in order). Last chunk may be short."""
    order = np.arange(count) if seed is None else np.random.default_rng(seed).permutation(count)
    return [order[i:i + batch_size] for i in range(0, count, batch_size)]
