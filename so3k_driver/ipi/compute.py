"""The physics side of the driver: a ``compute(cells_bohr, positions_bohr)`` callable.

It receives i-PI's cells (B, 3, 3) bohr (vectors as columns) and positions (B, N, 3) bohr and
returns energies (B,) Ha, forces (B, N, 3) Ha/bohr, virials (B, 3, 3) Ha and B JSON extra
strings, all from ONE ``Potential.evaluate`` call.
"""

from __future__ import annotations

import json
import re
from typing import Callable

import numpy as np

from . import conversion
from ..errors import ModelBreakdown, StructureMismatch, UserError
from ..evaluation.topology import BREAKAGE_BOND_SCALE, BondGuard

ComputeResult = tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]
Compute = Callable[..., ComputeResult]  # (cells_bohr, positions_bohr, pad_to=None) -> ComputeResult

# A PES's keywords come from XML or JSON as plain numbers: this lr_cutoff stands for "all pairs" (None)
PES_ALL_PAIRS = 0


def pes_lr_cutoff(lr_cutoff: float | None) -> float:
    """lr_cutoff (Å; None = all pairs) as a PES keyword (pes.py and direct_pes.py read it back)."""
    return PES_ALL_PAIRS if lr_cutoff is None else lr_cutoff


def lr_cutoff_from_pes(value) -> float | None:
    """A PES keyword (number or string, Å) back as lr_cutoff: PES_ALL_PAIRS means all pairs (None)."""
    value = float(value)
    return None if value == PES_ALL_PAIRS else value


# How a failed model call is reported in the logs the runner reads back, written and parsed here only:
# the socket driver logs one line "so3k driver: error (Class): message" (serving.main, whose log
# formatter adds the "so3k driver: " prefix); the direct backend soft-exits i-PI with
# "so3k direct PES: Class: message" (direct_pes). The class tells the runner whether a restart can help.
DRIVER_LOG_PREFIX = "so3k driver: "
DRIVER_ERROR_LINE = re.compile(re.escape(DRIVER_LOG_PREFIX) + r"error \((\w+)\): (.*)")
DIRECT_ERROR_MARK = "so3k direct PES:"
DIRECT_ERROR_LINE = re.compile(re.escape(DIRECT_ERROR_MARK) + r" (\w+): (.*)")


def driver_error_message(error: BaseException) -> str:
    """The socket driver's error line after its log prefix (see DRIVER_ERROR_LINE)."""
    return f"error ({type(error).__name__}): {error}"


def direct_error_message(error: BaseException) -> str:
    """The direct backend's soft-exit message (see DIRECT_ERROR_LINE)."""
    return f"{DIRECT_ERROR_MARK} {type(error).__name__}: {error}"


DEFAULT_MAX_FORCE = 50.0  # eV/Å (≈ 1 Ha/bohr); thermal MD of molecules stays below ~10 eV/Å
# × sum of covalent radii: a bond of the starting structure longer than this is broken (the
# criterion so3k analyze uses for "broke apart"; thermal C–C stays below 1.6 × 1.52 = 2.43 Å)
DEFAULT_MAX_BOND_STRETCH = BREAKAGE_BOND_SCALE


def check_forces(forces, numbers, max_force: float | None) -> None:
    """Raise ModelBreakdown if any atom's force (eV/Å, (B, N, 3)) exceeds max_force (None/0: no check)."""
    if not max_force:
        return
    magnitudes = np.linalg.norm(forces, axis=-1)
    structure, atom = np.unravel_index(np.argmax(magnitudes), magnitudes.shape)
    largest = magnitudes[structure, atom]
    if largest > max_force:
        raise ModelBreakdown(
            f"force of {largest:.1f} eV/Å on atom {atom + 1} (1-based; Z={numbers[atom]}) of structure {structure + 1} in this "
            f"request, above the limit of {max_force:g} eV/Å (--max-force): the structure has left the region "
            "the model describes (it is typically about to fly apart). Stopped rather than integrate it; "
            "resume from an earlier checkpoint with a smaller time step or lower temperature, or use a model "
            "trained on such geometries (--max-force 0 disables this check)")


def make_compute(potential, numbers, *, periodic: bool = False, total_charge: float = 0.0,
                 unpaired_electrons: float = 0.0, max_force: float | None = DEFAULT_MAX_FORCE,
                 max_bond_stretch: float | None = DEFAULT_MAX_BOND_STRETCH, reference_positions=None,
                 reference_cell=None) -> Compute:
    """Wrap ``potential`` for atoms ``numbers`` (N,). periodic=False: gas phase, zero virial.

    max_force (eV/Å): raise ModelBreakdown when a force exceeds it; None or 0 switches the check off.
    max_bond_stretch (× sum of covalent radii): raise ModelBreakdown when a covalent bond of the
    reference structure is longer than this (evaluation.topology.BondGuard); None or 0 switches the
    check off. reference_positions (N, 3) Å (and reference_cell (3, 3) Å, rows, when periodic) give
    the bonds; without them the bonds are those of the first structure i-PI sends (the first of its
    first request), which is the starting structure i-PI read from its input or checkpoint, in
    i-PI's own units, so no second reader of those files can disagree with it. After a driver
    restart mid-run that is the structure of the step being computed, which the guard had passed.
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    if max_bond_stretch is not None and not max_bond_stretch >= 0:
        raise UserError(f"max_bond_stretch must be >= 0 × sum of covalent radii (0 = no check), got {max_bond_stretch}")
    guard = None
    if max_bond_stretch and reference_positions is not None:
        guard = BondGuard(numbers, reference_positions, reference_cell if periodic else None, max_bond_stretch)

    def compute(cells_bohr: np.ndarray, positions_bohr: np.ndarray, pad_to: int | None = None) -> ComputeResult:
        """cells (B, 3, 3) and positions (B, N, 3) in bohr; pad_to: see Potential.evaluate."""
        nonlocal guard
        count, natoms = positions_bohr.shape[:2]
        if natoms != len(numbers):
            raise StructureMismatch(
                f"i-PI sent {natoms} atoms but the driver's structure has {len(numbers)}; "
                "the atom count must stay fixed (check --structure)")
        positions = conversion.positions_to_angstrom(positions_bohr)
        cells = conversion.cells_to_angstrom_rows(cells_bohr) if periodic else None
        results = potential.evaluate(np.broadcast_to(numbers, (count, natoms)), positions, cells,
                                     pbc=periodic, total_charge=total_charge,
                                     unpaired_electrons=unpaired_electrons, pad_to=pad_to)
        if max_bond_stretch:
            # after the model: its input checks (NaN positions, a degenerate cell) speak first
            if guard is None:
                guard = BondGuard(numbers, positions[0], None if cells is None else cells[0], max_bond_stretch)
            guard.check(positions, cells)
        check_forces(results.forces, numbers, max_force)
        energies = conversion.energies_to_hartree(results.energy)
        forces = conversion.forces_to_atomic(results.forces)
        if results.virial is not None:
            virials = conversion.virials_to_hartree(results.virial)
        else:
            virials = np.zeros((count, 3, 3))
        return energies, forces, virials, extras_json(results, count)

    return compute


# Per-structure extras sent to i-PI converted to atomic units; the committee members go in the keys
# i-PI's <ffcommittee parse_json="true"> reads. Keys not listed are sent as they are.
WIRE_EXTRAS = {
    "dipole": ("dipole", conversion.dipoles_to_atomic),
    "committee_energies": ("committee_pot", conversion.energies_to_hartree),
    "committee_forces": ("committee_force",
                         lambda f: conversion.forces_to_atomic(np.swapaxes(f, 0, 1)).reshape(f.shape[1], -1)),
    "committee_virials": ("committee_virial", lambda v: conversion.virials_to_hartree(v).reshape(len(v), -1)),
    "energy_uncertainty": ("energy_uncertainty", conversion.energies_to_hartree),
    "force_uncertainty": ("force_uncertainty", conversion.forces_to_atomic),
}


def extras_json(results, count: int) -> list[str]:
    """One JSON string per structure: evaluation time and whatever the model predicts besides energy.

    Units: time_s seconds (the whole batched call), charges e, hirshfeld_ratios dimensionless,
    dipole e·bohr, and for a committee committee_pot (M,) hartree, committee_force (M, 3N)
    hartree/bohr, committee_virial (M, 9) hartree (i-PI's <ffcommittee> layout), energy_uncertainty
    hartree, force_uncertainty (N,) hartree/bohr: atomic units, like everything on the wire.
    """
    texts = []
    for index in range(count):
        record = {"time_s": results.wall_time, "batch": count}
        for key, values in results.extras.items():
            name, convert = WIRE_EXTRAS.get(key, (key, np.asarray))
            record[name] = np.asarray(convert(values[index])).tolist()
        texts.append(json.dumps(record))
    return texts
