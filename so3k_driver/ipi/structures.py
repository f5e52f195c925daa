"""Atomic numbers for the driver: i-PI sends positions only, so the elements come from a file.

Accepted: any structure file ASE reads (xyz, extxyz, pdb, ...), i-PI xyz files with a
``# CELL(abcABC)`` comment, and i-PI XML inputs or RESTART files (elements taken from
``<beads><names>`` or from the ``<initialize><file>`` they point to).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

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
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise ValueError(f"{path}: not valid XML ({error})") from None
    names = root.find(".//beads/names")
    if names is not None:  # RESTART files store the atom names
        return numbers_from_symbols(names.text.strip().strip("[]").split(","), path)
    file_element = root.find(".//initialize/file")
    if file_element is None:
        raise ValueError(f"{path}: no <beads><names> nor <initialize><file> to read the elements from")
    from .ipi_xml import file_of_first_instance

    structure = file_of_first_instance(root, file_element)  # e.g. init_IDX.xyz of a <system_template>
    if not os.path.isabs(structure):
        structure = os.path.join(os.path.dirname(os.path.abspath(path)), structure)
    return read_numbers(structure)
