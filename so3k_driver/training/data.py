"""Labelled data sets: extxyz or npz (sGDML/MD17 and rMD17 keys), converted to eV and eV/Å once here.

A :class:`Dataset` holds ragged structures as lists (numbers, positions Å) plus energies (eV) and
forces (eV/Å), and per structure a cell (Å, rows) with its periodicity, a stress label (eV/Å^3,
NaN where the file has none), the total charge (e) and the number of unpaired electrons (SO3LR's
inputs). Per atom, optional teacher targets for SO3LR-type students: partial charges (e, extxyz array
``partial_charges``) and Hirshfeld volume ratios (``hirshfeld_ratios``), NaN where the file has none.
Forces in a file are assumed to be in ``energy_unit`` per Å and stresses in ``energy_unit`` per Å^3 (ASE's sign: stress = (1/V) dE/d(strain)).
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..evaluation.frames import ALL_PAIRS, LR_CUTOFF_INFO_KEY, ase_read, lr_cutoff_record
from ..units import energy_to_ev

# Per-atom teacher outputs a student can be trained on: extxyz array name -> the model output it labels.
ATOM_TARGETS = {"partial_charges": "charges", "hirshfeld_ratios": "hirshfeld_ratios"}

UNRECORDED, MIXED = "unrecorded", "mixed"  # Dataset.labels_lr_cutoff: no frame records one; two disagree

NPZ_KEYS = {  # our name -> candidate keys, first found wins
    "numbers": ("z", "nuclear_charges", "numbers"),
    "positions": ("R", "coords", "positions"),
    "energies": ("E", "energies", "energy"),
    "forces": ("F", "forces"),
}


@dataclasses.dataclass
class Dataset:
    """numbers[i] (N_i,) int, positions[i] (N_i, 3) Å, energies (S,) eV, forces[i] (N_i, 3) eV/Å.

    cells (S, 3, 3) Å rows and pbc (S, 3) bool (default: gas phase, zero cell); stress (S, 3, 3) eV/Å^3,
    NaN where unknown; total_charge (S,) e and unpaired_electrons (S,) (default 0).
    """

    numbers: list[np.ndarray]
    positions: list[np.ndarray]
    energies: np.ndarray
    forces: list[np.ndarray]
    source: str = ""
    cells: np.ndarray | None = None
    pbc: np.ndarray | None = None
    stress: np.ndarray | None = None
    total_charge: np.ndarray | None = None
    unpaired_electrons: np.ndarray | None = None
    atom_targets: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)
    # The labeller's long-range cutoff as the frames record it (LR_CUTOFF_INFO_KEY): a float (Å), None
    # (all pairs), UNRECORDED where no frame says, MIXED where frames disagree.
    labels_lr_cutoff: float | None | str = UNRECORDED

    @property
    def labels_say_one_lr_cutoff(self) -> bool:
        """Whether every frame records the same long-range cutoff (then ``labels_lr_cutoff`` is it)."""
        return self.labels_lr_cutoff not in (UNRECORDED, MIXED)

    def __post_init__(self):
        S = len(self.energies)
        defaults = {"cells": np.zeros((S, 3, 3)), "pbc": np.zeros((S, 3), bool),
                    "stress": np.full((S, 3, 3), np.nan), "total_charge": np.zeros(S),
                    "unpaired_electrons": np.zeros(S)}
        for name, default in defaults.items():
            value = getattr(self, name)
            value = default if value is None else np.asarray(value, default.dtype)
            if value.shape != default.shape:
                raise ValueError(f"{self.source or 'data'}: {name} must have shape {default.shape}, got {value.shape}")
            setattr(self, name, value)
        for name, values in self.atom_targets.items():
            if name not in ATOM_TARGETS:
                raise ValueError(f"unknown per-atom target {name!r} (known: {sorted(ATOM_TARGETS)})")
            if len(values) != S or any(len(v) != len(n) for v, n in zip(values, self.numbers)):
                raise ValueError(f"{self.source or 'data'}: {name} needs one value per atom of every structure")

    def has_atom_target(self, name: str) -> bool:
        """Whether any atom carries a finite ``name`` label."""
        return name in self.atom_targets and any(np.isfinite(v).any() for v in self.atom_targets[name])

    def __len__(self) -> int:
        return len(self.energies)

    def subset(self, indices) -> "Dataset":
        idx = [int(i) for i in indices]
        return Dataset([self.numbers[i] for i in idx], [self.positions[i] for i in idx],
                       self.energies[idx].copy(), [self.forces[i] for i in idx], self.source,
                       self.cells[idx], self.pbc[idx], self.stress[idx], self.total_charge[idx],
                       self.unpaired_electrons[idx],
                       {k: [v[i] for i in idx] for k, v in self.atom_targets.items()}, self.labels_lr_cutoff)

    @property
    def periodic(self) -> np.ndarray:
        """(S,) bool: structures with at least one periodic direction."""
        return self.pbc.any(axis=1)

    @property
    def has_stress(self) -> bool:
        return bool(np.isfinite(self.stress).all(axis=(1, 2)).any())

    @property
    def species(self) -> tuple[int, ...]:
        return tuple(sorted({int(z) for n in self.numbers for z in n}))

    @property
    def max_atoms(self) -> int:
        return max(len(n) for n in self.numbers)


def load_dataset(path: str | Path, energy_unit: str = "eV", energy_key: str | None = None,
                 forces_key: str | None = None) -> Dataset:
    """Read ``path`` (.npz or anything ASE reads) and convert energies/forces from ``energy_unit`` to eV."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} not found")
    extra = {}
    try:
        if path.suffix == ".npz":
            numbers, positions, energies, forces = _read_npz(path)
        else:
            if path.suffix in XYZ_SUFFIXES:
                check_xyz_layout(path)
            numbers, positions, energies, forces, extra = _read_ase(path, energy_key, forces_key)
            extra["stress"] = energy_to_ev(extra["stress"], energy_unit)
    except UserError:
        raise
    except (ValueError, KeyError, IndexError, EOFError, OSError, zipfile.BadZipFile) as error:
        # Readers (numpy, ASE) raise many kinds for a malformed file: one line naming the file.
        text = str(error)
        raise UserError(text if str(path) in text else f"{path}: malformed training data ({type(error).__name__}: "
                        f"{text})") from None
    energies = energy_to_ev(np.asarray(energies, np.float64).reshape(-1), energy_unit)
    forces = [energy_to_ev(np.asarray(f, np.float64), energy_unit) for f in forces]
    if not (len(numbers) == len(positions) == len(energies) == len(forces)):
        raise ValueError(f"{path}: inconsistent numbers of structures, energies and forces")
    return Dataset(numbers, positions, energies, forces, source=str(path), **extra)


XYZ_SUFFIXES = (".xyz", ".extxyz")
DEFAULT_LR_CUTOFF = 12.0  # Å: SO3LR's own default, for data that does not say how it was labelled


def describe_lr_cutoff(lr_cutoff: float | None) -> str:
    return "all pairs" if lr_cutoff is None else f"a {lr_cutoff:g} Å cutoff"


def resolve_lr_cutoff(requested: float | None | str, data: Dataset) -> tuple[float | None, str | None]:
    """The long-range cutoff (Å; None = all pairs) to evaluate a model on ``data`` with, and a one-line
    warning or None. ``requested`` is the user's choice, or UNRECORDED when they gave none: then the
    labels' own setting, else DEFAULT_LR_CUTOFF. A choice that differs from the labels' is kept, with a
    warning: the energies then differ by the long-range terms beyond the cutoff (~4 eV for SO3LR on
    Ac-Ala15-NHMe between 12 Å and all pairs)."""
    recorded = data.labels_lr_cutoff
    if requested == UNRECORDED:
        if not data.labels_say_one_lr_cutoff:
            return DEFAULT_LR_CUTOFF, (f"{data.source}: its frames were labelled with different long-range cutoffs "
                                       f"({LR_CUTOFF_INFO_KEY}); evaluating with the default {DEFAULT_LR_CUTOFF:g} Å"
                                       if recorded == MIXED else None)
        return recorded, None
    if data.labels_say_one_lr_cutoff and recorded != requested:
        return requested, (f"{data.source} was labelled with {describe_lr_cutoff(recorded)} ({LR_CUTOFF_INFO_KEY}) "
                           f"but the model runs with {describe_lr_cutoff(requested)}: energies differ by the "
                           "long-range terms in between")
    return requested, None


def _labels_lr_cutoff(frames) -> float | None | str:
    """The one long-range cutoff the frames that record one agree on (frames without the record are taken
    to share it: files joined from several sources often carry it on some frames only), UNRECORDED when
    none records one, MIXED when two frames record different ones."""
    settings = {_parse_lr_cutoff(a.info[LR_CUTOFF_INFO_KEY]) for a in frames if LR_CUTOFF_INFO_KEY in a.info}
    if not settings:
        return UNRECORDED
    return settings.pop() if len(settings) == 1 else MIXED


def _parse_lr_cutoff(record) -> float | None:
    if record == ALL_PAIRS:
        return None
    try:
        return float(record)
    except (TypeError, ValueError):
        raise ValueError(f"{LR_CUTOFF_INFO_KEY} must be a cutoff in Å or {ALL_PAIRS!r}, got {record!r}") from None


def check_xyz_layout(path: Path) -> None:
    """UserError naming the frame and line (both 1-based) where an xyz file's atom-count line does not
    match the lines that follow it: the mistake ASE reports only as a bare parse error."""
    with open(path, errors="replace") as handle:
        lines = handle.read().splitlines()
    index, frame = 0, 1
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        try:
            count = int(lines[index].split()[0])
        except ValueError:
            raise UserError(f"{path}: line {index + 1} (1-based) should be the atom count of frame {frame}, got "
                            f"{lines[index][:40]!r}") from None
        atoms = lines[index + 2:index + 2 + count]
        short = next((k for k, line in enumerate(atoms) if len(line.split()) < 4 or not line.split()[0].isalpha()), None)
        if len(atoms) < count or short is not None:
            found = short if short is not None else len(atoms)
            raise UserError(f"{path}: frame {frame} (1-based) says {count} atoms on line {index + 1}, but only "
                            f"{found} atom lines follow; fix that atom-count line or the atom lines")
        index += count + 2
        frame += 1


def _pick(archive, name: str, path: Path):
    for key in NPZ_KEYS[name]:
        if key in archive.files:
            return np.asarray(archive[key])
    raise ValueError(f"{path}: no {name} array (looked for keys {NPZ_KEYS[name]}, found {archive.files})")


def _read_npz(path: Path):
    with np.load(path, allow_pickle=False) as archive:
        z = _pick(archive, "numbers", path).astype(np.int64)
        R = _pick(archive, "positions", path).astype(np.float64)
        E = _pick(archive, "energies", path)
        F = _pick(archive, "forces", path).astype(np.float64)
    if R.ndim != 3 or F.shape != R.shape:
        raise ValueError(f"{path}: positions must be (S, N, 3) and forces the same shape, got {R.shape}, {F.shape}")
    if z.ndim != 1 or len(z) != R.shape[1]:
        raise ValueError(f"{path}: {len(z)} atomic numbers for structures of {R.shape[1]} atoms")
    S = len(R)
    return [z.copy() for _ in range(S)], list(R), E, list(F)


def _read_ase(path: Path, energy_key: str | None, forces_key: str | None):
    frames = ase_read(path, index=":")
    numbers, positions, energies, forces = [], [], [], []
    extra = {"cells": [], "pbc": [], "stress": [], "total_charge": [], "unpaired_electrons": []}
    for i, atoms in enumerate(frames):
        numbers.append(atoms.numbers.astype(np.int64))
        positions.append(atoms.positions.astype(np.float64))
        energies.append(_frame_energy(atoms, energy_key, path, i))
        forces.append(_frame_forces(atoms, forces_key, path, i))
        extra["cells"].append(atoms.cell.array if atoms.pbc.any() else np.zeros((3, 3)))
        extra["pbc"].append(atoms.pbc.copy())
        extra["stress"].append(_frame_stress(atoms))
        extra["total_charge"].append(float(atoms.info.get("total_charge", atoms.info.get("charge", 0.0))))
        extra["unpaired_electrons"].append(float(atoms.info.get("unpaired_electrons", 0.0)))
    extra = {k: np.asarray(v) for k, v in extra.items()}
    targets = {name: [np.asarray(a.arrays[name], np.float64).reshape(-1) if name in a.arrays
                      else np.full(len(a), np.nan) for a in frames]
               for name in ATOM_TARGETS if any(name in a.arrays for a in frames)}
    return numbers, positions, np.asarray(energies), forces, {**extra, "atom_targets": targets,
                                                              "labels_lr_cutoff": _labels_lr_cutoff(frames)}


def _frame_energy(atoms, key, path, i) -> float:
    if key:
        return float(atoms.info[key])
    if atoms.calc is not None and "energy" in atoms.calc.results:
        return float(atoms.calc.results["energy"])
    for name in ("energy", "Energy", "REF_energy", "energy_ev"):
        if name in atoms.info:
            return float(atoms.info[name])
    raise ValueError(f"{path} frame {i}: no energy (give energy_key)")


def _frame_forces(atoms, key, path, i) -> np.ndarray:
    if key:
        return np.asarray(atoms.arrays[key], np.float64)
    if atoms.calc is not None and "forces" in atoms.calc.results:
        return np.asarray(atoms.calc.results["forces"], np.float64)
    for name in ("forces", "REF_forces", "force"):
        if name in atoms.arrays:
            return np.asarray(atoms.arrays[name], np.float64)
    raise ValueError(f"{path} frame {i}: no forces (give forces_key)")


def _frame_stress(atoms) -> np.ndarray:
    """(3, 3) stress in the file's energy unit per Å^3 (Voigt or full), NaN when the frame has none."""
    from ase.stress import voigt_6_to_full_3x3_stress

    value = None
    if atoms.calc is not None and "stress" in atoms.calc.results:
        value = atoms.calc.results["stress"]
    elif "stress" in atoms.info:
        value = atoms.info["stress"]
    if value is None:
        return np.full((3, 3), np.nan)
    value = np.asarray(value, np.float64)
    return voigt_6_to_full_3x3_stress(value) if value.shape == (6,) else value.reshape(3, 3)


def split_indices(count: int, num_train: int, num_valid: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/validation split; num_valid None = all the rest."""
    if num_train >= count:
        raise ValueError(f"num_train {num_train} must be smaller than the {count} structures in the data")
    order = np.random.default_rng(seed).permutation(count)
    rest = count - num_train
    num_valid = rest if num_valid is None else min(num_valid, rest)
    return np.sort(order[:num_train]), np.sort(order[num_train:num_train + num_valid])


def fit_energy_shifts(data: Dataset) -> np.ndarray:
    """Per-element energy shifts (eV) by least squares, E_s ≈ Σ_Z count_s(Z)·shift(Z); returns (119,).

    With one composition the system is underdetermined and lstsq gives the minimum-norm solution,
    which still removes the mean energy.
    """
    species = data.species
    counts = np.zeros((len(data), len(species)))
    column = {z: j for j, z in enumerate(species)}
    for s, n in enumerate(data.numbers):
        for z in n:
            counts[s, column[int(z)]] += 1
    solution, *_ = np.linalg.lstsq(counts, data.energies, rcond=None)
    shifts = np.zeros(119)
    for z, j in column.items():
        shifts[z] = solution[j]
    return shifts


def write_extxyz(data: Dataset, path: str | Path) -> Path:
    """Write ``data`` as extxyz: energies (eV), forces (eV/Å) and stress (eV/Å^3) as calculator results,
    and the labels' long-range cutoff where they record one."""
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = []
    for s, (n, r, e, f) in enumerate(zip(data.numbers, data.positions, data.energies, data.forces)):
        atoms = Atoms(numbers=n, positions=r, cell=data.cells[s], pbc=data.pbc[s])
        results = {"energy": float(e), "forces": np.asarray(f)}
        if np.isfinite(data.stress[s]).all():
            results["stress"] = data.stress[s]
        atoms.calc = SinglePointCalculator(atoms, **results)
        if data.total_charge[s] or data.unpaired_electrons[s]:
            atoms.info.update(total_charge=float(data.total_charge[s]),
                              unpaired_electrons=float(data.unpaired_electrons[s]))
        for name, values in data.atom_targets.items():
            atoms.arrays[name] = np.asarray(values[s], np.float64)
        if data.labels_say_one_lr_cutoff:
            atoms.info[LR_CUTOFF_INFO_KEY] = lr_cutoff_record(data.labels_lr_cutoff)
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")
    return Path(path)
