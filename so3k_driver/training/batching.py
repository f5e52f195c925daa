"""Padded batches with fixed capacities so a training run compiles once.

Every batch holds ``batch_size`` structure slots, ``batch_size * max_atoms`` atom slots and
``batch_size * max_pairs`` pair slots (max over the whole data set). Padding atoms belong to an
extra, never-scored structure slot (index ``batch_size``); padding pairs are masked. Gas-phase
(non-periodic) structures only. Units: Å, eV, eV/Å.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..evaluation.neighbors import half_pair_list
from .data import Dataset


@dataclasses.dataclass
class PairCache:
    """Half pair lists of every structure, computed once (cutoff in Å)."""

    firsts: list[np.ndarray]
    seconds: list[np.ndarray]

    @classmethod
    def build(cls, data: Dataset, cutoff: float) -> "PairCache":
        firsts, seconds = [], []
        for positions in data.positions:
            pairs = half_pair_list(positions, cutoff, None, False)
            firsts.append(np.asarray(pairs.first, np.int32))
            seconds.append(np.asarray(pairs.second, np.int32))
        return cls(firsts, seconds)

    @property
    def max_pairs(self) -> int:
        return max(len(f) for f in self.firsts)


@dataclasses.dataclass(frozen=True)
class Capacities:
    batch_size: int
    atoms: int
    pairs: int

    @classmethod
    def for_data(cls, batch_size: int, max_atoms: int, max_pairs: int) -> "Capacities":
        return cls(batch_size, batch_size * max_atoms, batch_size * max(max_pairs, 1))


def make_batch(data: Dataset, pairs: PairCache, indices, cap: Capacities) -> dict[str, np.ndarray]:
    """Host arrays for the structures ``indices`` (at most ``cap.batch_size`` of them)."""
    B = cap.batch_size
    numbers = np.ones(cap.atoms, np.int32)  # padding atoms: hydrogen, no pairs, unscored
    positions = np.zeros((cap.atoms, 3), np.float32)
    forces = np.zeros((cap.atoms, 3), np.float32)
    atom_structure = np.full(cap.atoms, B, np.int32)
    atom_mask = np.zeros(cap.atoms, bool)
    first = np.zeros(cap.pairs, np.int32)
    second = np.zeros(cap.pairs, np.int32)
    pair_mask = np.zeros(cap.pairs, bool)
    energies = np.zeros(B + 1, np.float64)
    structure_mask = np.zeros(B + 1, bool)
    atom_counts = np.ones(B + 1, np.float32)
    a0 = p0 = 0
    for slot, i in enumerate(indices):
        n = len(data.numbers[i])
        m = len(pairs.firsts[i])
        numbers[a0:a0 + n] = data.numbers[i]
        positions[a0:a0 + n] = data.positions[i]
        forces[a0:a0 + n] = data.forces[i]
        atom_structure[a0:a0 + n] = slot
        atom_mask[a0:a0 + n] = True
        first[p0:p0 + m] = pairs.firsts[i] + a0
        second[p0:p0 + m] = pairs.seconds[i] + a0
        pair_mask[p0:p0 + m] = True
        energies[slot] = data.energies[i]
        structure_mask[slot] = True
        atom_counts[slot] = n
        a0 += n
        p0 += m
    return {"numbers": numbers, "positions": positions, "atom_structure": atom_structure,
            "atom_mask": atom_mask, "pair_first": first, "pair_second": second, "pair_mask": pair_mask,
            "energies": energies.astype(np.float32), "structure_mask": structure_mask,
            "atom_counts": atom_counts, "forces": forces}


def batch_order(count: int, batch_size: int, seed: int | None) -> list[np.ndarray]:
    """Index chunks for one epoch; shuffled with ``seed`` (None = in order). Last chunk may be short."""
    order = np.arange(count) if seed is None else np.random.default_rng(seed).permutation(count)
    return [order[i:i + batch_size] for i in range(0, count, batch_size)]
