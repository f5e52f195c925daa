"""Atomic numbers for the driver: i-PI sends positions only, so the elements come from a file.

Accepted: any structure file ASE reads (xyz, extxyz, pdb, ...), i-PI xyz files with a
``# CELL(abcABC)`` comment, and i-PI XML inputs or RESTART files (elements taken from
``<beads><names>`` or from the ``<initialize><file>`` they point to).

And the other way: :func:`ipi_xyz` writes a structure as the xyz i-PI's ``<file mode='xyz'>`` reads, and
:func:`ipi_structure_file` gives ``so3k run --structure`` an i-PI xyz for any structure file ASE reads.
"""

from __future__ import annotations

import os

import numpy as np
from ase.data import atomic_numbers


def numbers_from_symbols(symbols: list[str], source: str) -> np.ndarray:
    numbers = []
    for symbol in symbols:
        name = symbol.strip()
        clean = name[:1].upper() + name[1:].lower()
        if clean not in atomic_numbers:
            # i-PI labels such as "H1" or "Ow": keep the leading element letters
            clean = "".join(c for c in clean if c.isalpha())[:2]
            clean = clean if clean in atomic_numbers else clean[:1]
        if clean not in atomic_numbers:
            raise ValueError(f"{source}: cannot read an element from atom name {name!r}")
        numbers.append(atomic_numbers[clean])
    return np.asarray(numbers, dtype=np.int64)


def read_numbers(path: str) -> np.ndarray:
    """Atomic numbers (N,) of the first structure in ``path``."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"structure file {path} not found")
    if path.endswith(".xml") or _looks_like_xml(path):
        return _numbers_from_ipi_xml(path)
    if path.endswith(".xyz"):
        return _numbers_from_xyz(path)
    import ase.io

    return np.asarray(ase.io.read(path, index=0).numbers, dtype=np.int64)


def _looks_like_xml(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(256).lstrip().startswith(b"<")


def _numbers_from_xyz(path: str) -> np.ndarray:
    """Plain reader: i-PI's xyz comment lines confuse ASE's extxyz parser."""
    with open(path) as handle:
        count = int(handle.readline().split()[0])
        handle.readline()
        symbols = [handle.readline().split()[0] for _ in range(count)]
    return numbers_from_symbols(symbols, path)


def _numbers_from_ipi_xml(path: str) -> np.ndarray:
    from .ipi_xml import file_of_first_instance, load  # ipi_xml reads structures through this module

    root = load(path).getroot()
    names = root.find(".//beads/names")
    if names is not None:  # RESTART files store the atom names
        return numbers_from_symbols(names.text.strip().strip("[]").split(","), path)
    file_element = root.find(".//initialize/file")
    if file_element is None:
        raise ValueError(f"{path}: no <beads><names> nor <initialize><file> to read the elements from")
    structure = file_of_first_instance(root, file_element)  # e.g. init_IDX.xyz of a <system_template>
    if not os.path.isabs(structure):
        structure = os.path.join(os.path.dirname(os.path.abspath(path)), structure)
    return read_numbers(structure)


GAS_PHASE_BOX_ANGSTROM = 100.0
IPI_CELL_MARKERS = ("CELL(abcABC)", "CELL{")


def ipi_xyz(atoms, box_angstrom: float = GAS_PHASE_BOX_ANGSTROM, keep_cell: bool = True) -> str:
    """xyz text with i-PI's CELL comment (Å). A periodic ``atoms`` keeps its cell unless keep_cell is False
    (as a, b, c, α, β, γ; the positions are rotated with it into i-PI's orientation, a along x and b in
    the xy plane); any other gets a cubic box of box_angstrom, which only matters for PLUMED without NOPBC."""
    from ase.geometry import cell_to_cellpar, cellpar_to_cell

    atoms = atoms.copy()
    if keep_cell and atoms.pbc.any() and atoms.cell.rank == 3:
        parameters = cell_to_cellpar(atoms.cell.array)
        atoms.set_cell(cellpar_to_cell(parameters), scale_atoms=True)  # same fractional coordinates
        cell = " ".join(f"{v:.8f}" for v in parameters)
    else:
        cell = f"{box_angstrom} {box_angstrom} {box_angstrom} 90 90 90"
    lines = [str(len(atoms)), f"# CELL(abcABC): {cell} positions{{angstrom}} cell{{angstrom}}"]
    lines += [f"{s:2s} {x:16.8f} {y:16.8f} {z:16.8f}" for s, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions)]
    return "\n".join(lines) + "\n"


def is_ipi_xyz(path: str) -> bool:
    """Whether path is an xyz file whose comment line carries i-PI's cell (what i-PI's xyz reader needs)."""
    try:
        with open(path, errors="replace") as handle:
            handle.readline()
            comment = handle.readline()
    except OSError:
        return False
    return any(marker in comment for marker in IPI_CELL_MARKERS)


def ipi_structure_file(path: str, folder: str) -> str:
    """path itself when i-PI can read it as xyz; otherwise its first structure written as an i-PI xyz into
    folder (``<name>.ipi.xyz``), which is returned. ValueError when ASE cannot read the file."""
    if is_ipi_xyz(path):
        return path
    import ase.io

    try:
        atoms = ase.io.read(path, index=0)
    except Exception as error:  # ASE raises many types for unreadable files
        raise ValueError(f"cannot read a structure from {path}: {error}") from None
    if len(atoms) == 0:
        raise ValueError(f"cannot read a structure from {path}: no atoms in it")
    converted = os.path.join(folder, os.path.basename(path).rsplit(".", 1)[0] + ".ipi.xyz")
    with open(converted, "w") as handle:
        handle.write(ipi_xyz(atoms))
    return converted
