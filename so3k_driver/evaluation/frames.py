"""Read structure files into ``ase.Atoms`` frames (Å), and evaluate many frames with a Potential:
same-size frames (same elements in the same order, same periodicity) go together, ``batch_size`` per
call, whatever order they come in; ``predict_frames`` returns them as frames carrying the results."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import UserError
from ..progress import Progress
from ..units import BOHR_IN_ANGSTROM

# i-PI's xyz trajectories name what they hold and its unit in the comment line, e.g.
# "positions{atomic_unit}  cell{atomic_unit}"; ASE keeps each word, braces dropped, as a key of atoms.info.
# i-PI's "automatic" length unit is atomic units, its "ase" unit Å.
IPI_LENGTH_UNITS_IN_ANGSTROM = {"atomic_unit": BOHR_IN_ANGSTROM, "automatic": BOHR_IN_ANGSTROM, "angstrom": 1.0,
                                "ase": 1.0, "nanometer": 10.0, "picometer": 0.01, "meter": 1e10}
IPI_POSITION_KINDS = ("positions", "x_centroid")
IPI_POSITION_KEYS = {kind + unit: factor for kind in IPI_POSITION_KINDS
                     for unit, factor in IPI_LENGTH_UNITS_IN_ANGSTROM.items()}

# Frames evaluated by a model with long-range terms (SO3LR-type) record how far those reached: the
# cutoff in Å, or "all" for all pairs (gas phase). Over all pairs of Ac-Ala15-NHMe a 12 Å cutoff moves
# SO3LR's energy by ~4 eV, so labels compared or trained on with the other setting are silently wrong;
# ``so3k test`` and ``so3k train`` read this back (training/data.py).
LR_CUTOFF_INFO_KEY = "lr_cutoff_A"
ALL_PAIRS = "all"


def lr_cutoff_record(lr_cutoff: float | None) -> str | float:
    """What LR_CUTOFF_INFO_KEY holds for a long-range cutoff (Å; None = all pairs)."""
    return ALL_PAIRS if lr_cutoff is None else float(lr_cutoff)


# ASE reads a compressed file through a decompressing stream and seeks in it while it indexes the frames;
# every backward seek decompresses from the start again, so reading all frames grows with their square
# (an .extxyz.xz of 1030 Ac-Ala15-NHMe frames took ~11 min, 120 frames 13.2 s against 0.4 s decompressed).
DECOMPRESSORS = {".xz": lzma.open, ".lzma": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}


def ase_read(path, index=":"):
    """``ase.io.read(path, index)``, with a compressed file (.xz, .lzma, .gz, .bz2) decompressed once into a
    temporary file of the inner name first (ASE then tells the format from that name as usual)."""
    import ase.io

    path = Path(path)
    opener = DECOMPRESSORS.get(path.suffix.lower())
    if opener is None:
        return ase.io.read(path, index=index)
    with tempfile.TemporaryDirectory(prefix="so3k_frames_") as folder:
        inner = Path(folder) / path.stem  # "train.extxyz.xz" -> "train.extxyz"
        with opener(path, "rb") as source, open(inner, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        return ase.io.read(inner, index=index)


def read_structure_frames(path, index=":") -> list:
    """The frames of a structure file as a list of ase.Atoms with positions in Å: any file ASE reads.

    i-PI xyz trajectories are recognised by their "# CELL(abcABC):" comment: positions (or centroid
    positions) written in atomic units (i-PI's default, ``positions{atomic_unit}``), nm, pm or m are
    converted to Å, and a trajectory of anything else (forces, velocities, ...) is refused. Their CELL
    is not read (frames come back without a cell). Errors (missing, empty, unreadable file) are one-line UserErrors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"structure file {path} not found")
    if path.stat().st_size == 0:
        raise UserError(f"no frames in {path}: the file is empty")
    try:
        frames = ase_read(path, index=index)
    except Exception as error:  # noqa: BLE001 - ASE raises many kinds for unreadable files
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserError(f"cannot read structure file {path}: {message}") from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise UserError(f"no frames in {path}" + ("" if index == ":" else f" at index {index!r}"))
    for atoms in frames:
        _to_angstrom(atoms, path)
    return frames


def _to_angstrom(atoms, path) -> None:
    """Positions of an i-PI xyz frame (recognised by its CELL comment) to Å, in place. The comment's
    words are then dropped from atoms.info: written out again (extxyz) they would say "atomic units"
    about positions that are now in Å. A frame of anything else than positions is refused."""
    if "CELL(abcABC):" not in atoms.info:
        return
    words, atoms.info = atoms.info, {}
    factors = [IPI_POSITION_KEYS[key] for key in words if key in IPI_POSITION_KEYS]
    if not factors:
        content = [key.removesuffix("atomic_unit").removesuffix("automatic") for key in words
                   if not key.startswith("cell") and key.isidentifier()]
        raise UserError(f"{path} is an i-PI trajectory of {content[-1] if content else 'something else'}, not of "
                        f"positions or x_centroid in a length unit (" + ", ".join(IPI_LENGTH_UNITS_IN_ANGSTROM) + ")")
    atoms.positions *= factors[0]


def evaluate_frames(potential, frames: list, batch_size: int = 16, description: str = "evaluating",
                    quiet: bool = False, **options) -> Iterator[tuple[list[int], object]]:
    """Yield (indices into ``frames``, ``Results`` for those frames in that order); ``options`` go to
    ``Potential.evaluate`` (e.g. total_charge). Shows progress on stderr unless ``quiet``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    groups: dict = {}
    for index, atoms in enumerate(frames):
        groups.setdefault((tuple(atoms.numbers), tuple(atoms.pbc)), []).append(index)
    with Progress(len(frames), description=description, unit="frame",
                  stream=io.StringIO() if quiet else None) as bar:
        done = 0
        for (numbers, pbc), indices in groups.items():
            periodic = any(pbc)
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                positions = np.stack([frames[i].positions for i in chunk])
                cells = np.stack([frames[i].cell.array for i in chunk]) if periodic else None
                yield chunk, potential.evaluate(np.asarray(numbers), positions, cells, pbc if periodic else False,
                                                **options)
                done += len(chunk)
                bar.update(done)


def predict_frames(potential, frames: list, batch_size: int = 16, description: str = "evaluating",
                   quiet: bool = False, extras: dict[str, str] | None = None, **options) -> list:
    """Copies of ``frames`` (same order) carrying ``potential``'s energy (eV), forces (eV/Å) and, for
    periodic frames, stress (eV/Å^3) in a SinglePointCalculator (what extxyz writes as energy, forces,
    stress), and its extra outputs (charges, committee spreads, ...): per-atom ones in ``atoms.arrays``
    (flattened to (N, k) where they have more axes), per-structure ones in ``atoms.info`` (a float, or a
    flat array). ``extras`` maps the outputs to keep to the names they get (None: all, own names).
    ``options`` go to ``Potential.evaluate`` (e.g. total_charge). A model with long-range terms also
    records its long-range cutoff in ``atoms.info[LR_CUTOFF_INFO_KEY]``."""
    from ase.calculators.singlepoint import SinglePointCalculator

    long_range = potential.config.needs_long_range_pairs
    predicted = [None] * len(frames)
    for chunk, result in evaluate_frames(potential, frames, batch_size, description, quiet, **options):
        keep = extras if extras is not None else {name: name for name in result.extras}
        for slot, i in enumerate(chunk):
            atoms = frames[i].copy()
            values = {"energy": float(result.energy[slot]), "forces": result.forces[slot]}
            if result.stress is not None:
                values["stress"] = result.stress[slot]
            atoms.calc = SinglePointCalculator(atoms, **values)
            for output, name in keep.items():
                if output not in result.extras:
                    continue
                value = np.asarray(result.extras[output][slot], np.float64)
                if value.ndim >= 1 and value.shape[0] == len(atoms):
                    atoms.arrays[name] = value.reshape(len(atoms), -1) if value.ndim > 2 else value
                else:
                    atoms.info[name] = float(value) if value.ndim == 0 else value.ravel()
            if long_range:
                atoms.info[LR_CUTOFF_INFO_KEY] = lr_cutoff_record(potential.lr_cutoff)
            predicted[i] = atoms
    return predicted


def write_extxyz(frames: list, output) -> Path:
    """Write frames as extxyz (energy eV, forces eV/Å, stress eV/Å^3 where present, and their arrays and
    info), creating the folder; returns the path. Errors are one-line UserErrors."""
    import ase.io

    output = Path(output)
    if not frames:
        raise UserError(f"no frames to write to {output}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        ase.io.write(output, frames, format="extxyz")
    except OSError as error:
        raise UserError(f"cannot write {output}: {error.strerror or error}") from None
    return output
