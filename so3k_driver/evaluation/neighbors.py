"""Neighbour lists on the host (vesin cell lists; a k-d tree in the gas phase) and their padding into
fixed-capacity buckets.

Conventions: positions in Å; cell with lattice vectors as rows; a pair (a, b, shift) means the
displacement r_b - r_a + shift, shift = n @ cell with integer n. Lists are *half* lists: each
unordered pair (including a periodic image of an atom with itself) appears once; the model
evaluates both directions. Cutoffs larger than half the cell are handled (several images).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import vesin
from scipy.spatial import cKDTree


@dataclasses.dataclass
class PairList:
    """first, second: (P,) int64 atom indices; shifts: (P, 3) Cartesian shift vectors in Å."""

    first: np.ndarray
    second: np.ndarray
    shifts: np.ndarray

    def __len__(self) -> int:
        return len(self.first)

    def displacements(self, positions: np.ndarray) -> np.ndarray:
        return positions[self.second] - positions[self.first] + self.shifts


def half_pair_list(positions: np.ndarray, cutoff: float, cell: np.ndarray | None, pbc) -> PairList:
    """All unordered pairs closer than ``cutoff`` (Å), including periodic images where ``pbc``."""
    positions = np.asarray(positions, dtype=np.float64)
    periodic = np.broadcast_to(np.asarray(pbc if pbc is not None else False, dtype=bool), (3,))
    if not periodic.any():
        if len(positions) < 2:
            empty = np.zeros(0, np.int64)
            return PairList(empty, empty, np.zeros((0, 3)))
        # SciPy's k-d tree: 0.37 ms against vesin's 1.28 ms for 8 x Ac-Ala15-NHMe at 4.5 Å (2-core CPU); an MD
        # step of 8 replicas builds 8 lists on the host before its model call (docs/results/gpu_h200/README.md).
        pairs = cKDTree(positions).query_pairs(float(cutoff), output_type="ndarray").astype(np.int64)
        return PairList(pairs[:, 0], pairs[:, 1], np.zeros((len(pairs), 3)))
    box = np.zeros((3, 3)) if cell is None else np.asarray(cell, np.float64)
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=False)
    first, second, shifts = calculator.compute(positions, box, periodic.tolist(), quantities="ijS")
    return PairList(first.astype(np.int64), second.astype(np.int64), shifts.astype(np.float64) @ box)


@functools.lru_cache(maxsize=16)
def all_pairs(num_atoms: int) -> PairList:
    """Every unordered pair of a gas-phase structure of ``num_atoms`` atoms (no shifts).

    The list depends on the atom count only, so it is built once per count (read-only arrays: an MD
    step of 8 x 162 atoms would otherwise rebuild 8 x 13 041 pairs).
    """
    first, second = np.triu_indices(num_atoms, k=1)
    pairs = PairList(first, second, np.zeros((len(first), 3)))
    for array in (pairs.first, pairs.second, pairs.shifts):
        array.flags.writeable = False
    return pairs


def bucket_capacity(count: int, minimum: int = 16, growth: float = 1.1, multiple: int = 8) -> int:
    """Smallest capacity of the ladder minimum * growth^k (each rung rounded up to ``multiple``) >= count.

    A fixed ladder means a capacity, once compiled, is reused by any later list that fits in it.
    """
    capacity = minimum
    while capacity < count:
        capacity = int(math.ceil(capacity * growth / multiple) * multiple)
    return capacity


class CapacityKeeper:
    """Remembers the capacity in use per key and only moves to another bucket when the count no
    longer fits, or has fallen far below it; an MD run whose pair count fluctuates then keeps one
    compiled shape instead of hopping between neighbouring buckets.

    The first capacity for a key is the tightest bucket (padded pairs cost as much as real ones);
    once a key has overflowed, the next bucket leaves ``headroom`` so fluctuations fit."""

    def __init__(self, shrink_below: float = 0.4, headroom: float = 1.08):
        self._capacity: dict = {}
        self._shrink_below = shrink_below
        self._headroom = headroom

    def current(self, key) -> int | None:
        return self._capacity.get(key)

    def capacity(self, key, count: int) -> int:
        current = self._capacity.get(key)
        if current is None or count < self._shrink_below * current:
            current = bucket_capacity(max(count, 1))
        elif count > current:
            current = bucket_capacity(int(count * self._headroom) + 1)
        self._capacity[key] = current
        return current
