"""Host-side batching: B same-size structures -> padded :class:`~so3k_driver.model.forces.Batch` arrays
for as few jitted calls of as few distinct shapes as possible, and the results back.

Used by :class:`~so3k_driver.evaluation.potential.Potential` for every caller (CLI, ASE, the i-PI
socket server and the in-process PES), so padding happens in this one place:

- call sizing: on a CPU a batch is split into calls of about ``pairs_per_call`` pairs (per-pair
  arrays that stay in cache run faster); the size is remembered per (B, N) so an MD run keeps one
  compiled shape;
- padding: the last call is filled up by repeating its last structure, and pair lists are padded to
  capacity buckets (``neighbors.CapacityKeeper``), so pair counts that fluctuate do not recompile;
  each call position of a batch (replica k of an MD batch) keeps its own bucket;
- ``pad_to``: a caller whose batches are sometimes short (i-PI's dispatcher, a replica exchange
  step that arrives in pieces) sizes the calls as for ``pad_to`` structures: one compiled shape,
  and nothing is computed for the missing ones;
- repeated structures: trailing exact copies of a structure (i-PI pads short batches that way) are
  evaluated once and their results copied.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from ..model.forces import Batch, empty_long_range_pairs
from .neighbors import CapacityKeeper, PairList

PER_ATOM_EXTRAS = ("charges", "hirshfeld_ratios", "committee_forces")  # (A, ...) in a call -> (S, N, ...)


@dataclasses.dataclass
class StructureBatch:
    """B structures of N atoms on the host: numbers (B, N) int, positions (B, N, 3) Å, total_charge and
    unpaired_electrons (B,); short (and for SO3LR long) half pair lists of each structure."""

    numbers: np.ndarray
    positions: np.ndarray
    total_charge: np.ndarray
    unpaired_electrons: np.ndarray
    short: list[PairList]
    long: list[PairList] | None = None

    def __len__(self) -> int:
        return len(self.positions)


@dataclasses.dataclass
class Outputs:
    """Per-structure host results: energy (B,) eV, forces (B, N, 3) eV/Å, strain_derivative (B, 3, 3) eV
    or None, extras (B, ...) per key."""

    energy: np.ndarray
    forces: np.ndarray
    strain_derivative: np.ndarray | None
    extras: dict[str, np.ndarray]

    def take(self, index) -> "Outputs":
        return Outputs(self.energy[index], self.forces[index],
                       None if self.strain_derivative is None else self.strain_derivative[index],
                       {k: v[index] for k, v in self.extras.items()})

    @classmethod
    def concatenate(cls, parts: list["Outputs"]) -> "Outputs":
        if len(parts) == 1:
            return parts[0]  # one call (an MD step of one structure): nothing to join
        strain = None if parts[0].strain_derivative is None else np.concatenate([p.strain_derivative for p in parts])
        return cls(np.concatenate([p.energy for p in parts]), np.concatenate([p.forces for p in parts]), strain,
                   {k: np.concatenate([p.extras[k] for p in parts]) for k in parts[0].extras})


def capacity_key(prefix: str, structures_per_call: int, num_atoms: int, position: int) -> tuple:
    """The CapacityKeeper key of the calls of ``structures_per_call`` structures of ``num_atoms`` atoms
    that start at structure ``position`` of their batch ('pair': short-range list, 'lr': long-range)."""
    return prefix, (structures_per_call, num_atoms), position


def trailing_copies(numbers, positions, cells, charges, unpaired) -> int:
    """How many structures at the end of the batch are exact copies of the one before them."""
    B = len(positions)
    copies = 0
    while copies < B - 1:
        b = B - 1 - copies
        same = (np.array_equal(positions[b], positions[b - 1]) and np.array_equal(numbers[b], numbers[b - 1])
                and charges[b] == charges[b - 1] and unpaired[b] == unpaired[b - 1]
                and (cells is None or np.array_equal(cells[b], cells[b - 1])))
        if not same:
            break
        copies += 1
    return copies


class Batcher:
    """Packs :class:`StructureBatch` es into padded jitted-call inputs of dtype ``dtype``.

    pairs_per_call: split batches into calls of about this many short-range pairs (None: one call).
    min_calls: split every batch into at least this many calls (one per device sharing it).
    """

    def __init__(self, dtype, pairs_per_call: int | None, min_calls: int = 1):
        if pairs_per_call is not None and pairs_per_call < 1:
            raise ValueError(f"pairs_per_call must be >= 1 or None, got {pairs_per_call}")
        if min_calls < 1:
            raise ValueError(f"min_calls must be >= 1, got {min_calls}")
        self.dtype = np.dtype(dtype)
        self.pairs_per_call = pairs_per_call
        self.min_calls = min_calls
        self.capacities = CapacityKeeper()
        self._per_call: dict = {}

    def structures_per_call(self, num_structures: int, num_atoms: int, pairs_per_structure: int) -> int:
        """How many structures go into one jitted call: all of them, unless a pair budget is set.

        The choice is remembered per (B, N), so an MD run keeps one compiled batch shape."""
        key = (num_structures, num_atoms)
        if key not in self._per_call:
            per_call = -(-num_structures // self.min_calls)  # ceil: every device gets a share
            if self.pairs_per_call is not None:
                per_call = max(1, min(per_call, self.pairs_per_call // max(1, pairs_per_structure)))
            # as many calls as needed, filled evenly: 16 structures with room for 9 per call become
            # 2 calls of 8, not 9 + 7 padded to 9 + 9
            calls = -(-num_structures // per_call)
            self._per_call[key] = -(-num_structures // calls)
        return self._per_call[key]

    def calls(self, structures: StructureBatch, pad_to: int | None = None) -> Iterator[tuple[Batch, int]]:
        """(inputs, count) for each jitted call: the first ``count`` structure slots are real.

        All calls have ``per_call`` slots, sized as for ``max(B, pad_to)`` structures."""
        B, N = structures.numbers.shape
        planned = max(B, pad_to or 0)
        per_call = self.structures_per_call(planned, N, max(len(p) for p in structures.short))
        for first in range(0, B, per_call):
            # the last call is padded by repeating its last structure: one compiled shape
            index = np.minimum(np.arange(first, first + per_call), B - 1)
            yield self.pack(structures, index, position=first), min(per_call, B - first)

    def pack(self, structures: StructureBatch, index: np.ndarray, position: int = 0) -> Batch:
        """Host arrays for one jitted call over structures ``index``, the call that starts at structure
        ``position`` of its batch.

        Each call position keeps its own pair capacity: in MD, position k of i-PI's batch is always
        replica (or walker, or bead) k, so each call is padded to what its own structures need. One
        capacity shared by all calls padded every call to the largest structure's: 12 % more pair
        work for 8 Ac-Ala15-NHMe walkers whose pairs ranged over 1.5 x (measured 1.13 x per batch)."""
        S, N = len(index), structures.numbers.shape[1]
        arrays = {
            "numbers": structures.numbers[index].reshape(-1).astype(np.int32),
            "atom_structure": np.repeat(np.arange(S, dtype=np.int32), N),
            "positions": structures.positions[index].reshape(-1, 3).astype(self.dtype),
            "total_charge": structures.total_charge[index].astype(self.dtype),
            "unpaired_electrons": structures.unpaired_electrons[index].astype(self.dtype),
        }
        arrays.update(self._pair_arrays(structures.short, index, N, "pair", position))
        if structures.long is not None:
            arrays.update(self._pair_arrays(structures.long, index, N, "lr", position))
        else:
            arrays.update(empty_long_range_pairs(self.dtype))
        return Batch(**arrays)

    def _pair_arrays(self, lists: list[PairList], index, num_atoms: int, prefix: str,
                     position: int) -> dict[str, np.ndarray]:
        """Concatenate the half lists of structures ``index`` with atom offsets; pad to the capacity bucket of
        the call's position in its batch. prefix: 'pair' (short-range) or 'lr' (long-range)."""
        count = sum(len(lists[b]) for b in index)
        capacity = self.capacities.capacity(capacity_key(prefix, len(index), num_atoms, position), count)
        first = np.zeros(capacity, np.int32)
        second = np.zeros(capacity, np.int32)
        shifts = np.zeros((capacity, 3), self.dtype)
        owner = np.zeros(capacity, np.int32)
        start = 0
        for slot, b in enumerate(index):
            pairs = lists[b]
            stop = start + len(pairs)
            first[start:stop] = pairs.first + slot * num_atoms
            second[start:stop] = pairs.second + slot * num_atoms
            shifts[start:stop] = pairs.shifts
            owner[start:stop] = slot
            start = stop
        return {f"{prefix}_first": first, f"{prefix}_second": second, f"{prefix}_shifts": shifts,
                f"{prefix}_structure": owner, f"{prefix}_mask": np.arange(capacity) < count}

    @staticmethod
    def host_outputs(energies, forces, strain_derivative, extras, count: int, num_atoms: int) -> Outputs:
        """The first ``count`` structures of one call's device outputs, as float64 host arrays of their own.

        Always copies: on a CPU the outputs are read-only views of JAX's buffers, and in float64 a conversion
        would hand those views on to the caller."""
        S = len(energies)
        host = {k: np.array(v, dtype=np.float64) for k, v in extras.items()}
        for key in PER_ATOM_EXTRAS:
            if key in host:
                host[key] = host[key].reshape(S, num_atoms, *host[key].shape[1:])
        outputs = Outputs(
            np.array(energies, dtype=np.float64),
            np.array(forces, dtype=np.float64).reshape(S, num_atoms, 3),
            None if strain_derivative is None else np.array(strain_derivative, dtype=np.float64),
            host,
        )
        return outputs.take(slice(0, count))


def repeat_last(outputs: Outputs, count: int) -> Outputs:
    """Extend per-structure outputs to ``count`` structures by repeating the last one."""
    if len(outputs.energy) == count:
        return outputs
    return outputs.take(np.minimum(np.arange(count), len(outputs.energy) - 1))
