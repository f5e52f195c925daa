"""Checks on user structures before they reach the model; each failure is a one-line InputError."""

from __future__ import annotations

import numpy as np
from ase.data import chemical_symbols
from ..errors import InputError

MIN_DISTANCE = 0.1  # Å; closer atoms are certainly an input error (and blow up the model)



def symbol(z: int) -> str:
    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else f"Z={z}"


def check_structures(numbers: np.ndarray, positions: np.ndarray, cells: np.ndarray | None,
                     pbc: np.ndarray, species: tuple[int, ...]) -> None:
    """numbers (B, N) int, positions (B, N, 3) Å, cells (B, 3, 3) rows or None, pbc (3,) bool."""
    if numbers.ndim != 2 or positions.ndim != 3 or positions.shape[-1] != 3:
        raise InputError(f"expected numbers (N,) and positions (N, 3); got shapes {numbers.shape} and {positions.shape}")
    if numbers.shape[1] == 0:
        raise InputError("empty structure: no atoms")
    if positions.shape[:2] != numbers.shape:
        raise InputError(f"mismatched shapes: {numbers.shape[1]} atomic numbers but {positions.shape[1]} positions")
    known = set(species)
    unknown = sorted(set(np.unique(numbers).tolist()) - known)
    if unknown:
        names = ", ".join(symbol(z) for z in unknown)
        raise InputError(f"element(s) {names} unknown to this model (it knows {', '.join(symbol(z) for z in sorted(known))})")
    bad = ~np.isfinite(positions)
    if bad.any():
        b, i, _ = np.argwhere(bad)[0]
        raise InputError(f"non-finite position (NaN or inf) for atom {i + 1} of structure {b + 1} (both 1-based)")
    if cells is not None:
        if cells.shape[1:] != (3, 3):
            raise InputError(f"cell must be 3x3 (lattice vectors as rows), got {cells.shape[1:]}")
        if not np.isfinite(cells).all():
            raise InputError("non-finite cell")
        if pbc.any():
            volumes = np.abs(np.linalg.det(cells))
            if (volumes < 1e-6).any():
                raise InputError("periodic cell is degenerate (zero volume): give three independent lattice vectors")
    elif pbc.any():
        raise InputError("periodic boundary conditions requested but no cell given")


def check_close_contacts(structure: int, first: np.ndarray, second: np.ndarray, distances: np.ndarray) -> None:
    if len(distances) and distances.min() < MIN_DISTANCE:
        k = int(np.argmin(distances))
        raise InputError(
            f"atoms {first[k] + 1} and {second[k] + 1} of structure {structure + 1} (1-based) are {distances[k]:.3g} Å apart "
            f"(< {MIN_DISTANCE} Å): overlapping atoms or a cell too small for them"
        )
