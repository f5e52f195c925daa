"""``so3k minima``: quench the frames of trajectories to local minima and count the distinct ones.

Workflow: read every frame of the given files (any format ASE reads; i-PI ``*.pos_*.xyz`` included),
group them by their atoms, minimise each group with the batched FIRE or L-BFGS of
:mod:`so3k_driver.evaluation.minimise`, remove duplicates and write

- ``summary.json``: ``frames``, ``converged``, ``broken`` (two atoms merged: a hole of the model),
  ``distinct_minima``, ``wall_time_s``, the ``optimizer``,
  the criterion ``fmax_eV_per_A``, optimiser steps per frame, energies (eV), the tolerances and, for
  peptides, phi/psi (degrees) per minimum;
- ``minima.extxyz``: the distinct minima sorted by energy (energy (eV) and forces (eV/Å) as results,
  ``relative_energy_eV``, ``frames_found`` and ``fmax_eV_per_A`` in info);
- ``relative_energies.png`` (histogram of E - E_min, eV) and, for peptides, ``ramachandran.png``;
- with harmonic temperatures (``--harmonic``): the harmonic free energies of the lowest minima
  (:mod:`so3k_driver.sampling.harmonic`) in ``summary.json["harmonic"]``, in minima.extxyz's info and
  in ``free_energies.png``.

Duplicates: two converged structures are the same minimum when their energies differ by less than
``energy_tolerance`` (eV) and their fingerprints agree: for peptides (a backbone that
:func:`so3k_driver.sampling.peptide.find_backbone` can trace) every backbone torsion phi/psi within
``angle_tolerance`` degrees (periodic difference); otherwise the sorted interatomic distances
(a permutation- and rotation-invariant fingerprint, Å) within ``distance_tolerance`` Å RMS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..evaluation.optimizers import DEFAULT_OPTIMIZER, OPTIMIZERS, FireSettings, LbfgsSettings
from ..progress import Progress
from . import peptide
from .harmonic import FREE_ENERGY_PLOT, harmonic_free_energies, plot_free_energies

SUMMARY = "summary.json"
MINIMA = "minima.extxyz"
HISTOGRAM = "relative_energies.png"
RAMACHANDRAN = "ramachandran.png"


@dataclasses.dataclass(frozen=True)
class DuplicateTolerances:
    """energy (eV), angle (degrees, peptides' phi/psi), distance (Å RMS of sorted distances)."""

    energy: float = 0.01
    angle: float = 10.0
    distance: float = 0.02

    def __post_init__(self):
        for name, value in dataclasses.asdict(self).items():
            if not value > 0:
                raise UserError(f"{name} tolerance must be > 0, got {value!r}")


@dataclasses.dataclass
class Minimum:
    """One distinct minimum: atoms (ase.Atoms at the minimum), energy (eV), forces (N, 3) eV/Å,
    fmax (eV/Å), frames (indices into the input frames that quenched to it), torsions (phi then psi
    per residue, degrees; None for non-peptides)."""

    atoms: object
    energy: float
    forces: np.ndarray
    fmax: float
    frames: list[int]
    torsions: np.ndarray | None


def read_frames(paths) -> list:
    """Every frame of every file (ase.Atoms, positions in Å; i-PI trajectories in atomic units are
    converted, see evaluation.frames.read_structure_frames); errors are one-line UserErrors."""
    from ..evaluation.frames import read_structure_frames

    if not paths:
        raise UserError("no trajectory files given")
    frames = []
    for path in paths:
        read = read_structure_frames(path)
        if any(atoms.pbc.any() for atoms in read):
            raise UserError(f"{path}: periodic frames are not supported (gas-phase minimisation only)")
        frames.extend(read)
    return frames


def backbone_torsions(numbers, positions) -> tuple[peptide.Backbone | None, np.ndarray | None]:
    """The backbone of a capped peptide and phi/psi (..., 2 R) in degrees, or (None, None)."""
    try:
        backbone = peptide.find_backbone(numbers, positions.reshape(-1, len(numbers), 3)[0])
    except ValueError:
        return None, None
    quads = backbone.phi_atoms() + backbone.psi_atoms()
    return backbone, peptide.dihedrals(positions, quads)


def distance_fingerprints(positions) -> np.ndarray:
    """Sorted interatomic distances (Å), (B, N, 3) -> (B, N (N - 1) / 2)."""
    first, second = np.triu_indices(positions.shape[1], k=1)
    return np.sort(np.linalg.norm(positions[:, second] - positions[:, first], axis=-1), axis=1)


def same_fingerprint(a: np.ndarray, b: np.ndarray, angles: bool, tolerances: DuplicateTolerances) -> bool:
    """Torsions (degrees): every periodic difference within tolerance; distances (Å): RMS within tolerance."""
    if angles:
        difference = (a - b + 180.0) % 360.0 - 180.0
        return bool(np.all(np.abs(difference) < tolerances.angle))
    return bool(np.sqrt(np.mean((a - b) ** 2)) < tolerances.distance)


def distinct_minima(energies, fingerprints, angles: bool, tolerances: DuplicateTolerances) -> list[list[int]]:
    """Groups of indices (into energies (B,) eV and fingerprints (B, K)) that are one minimum, each
    group led by its lowest-energy member, groups sorted by energy. A structure joins the first
    group whose leader is within the energy tolerance and has the same fingerprint."""
    order = np.argsort(energies, kind="stable")
    groups: list[list[int]] = []
    for i in order:
        match = None
        for group in reversed(groups):  # leaders are sorted by energy: scan back while within tolerance
            leader = group[0]
            if energies[i] - energies[leader] >= tolerances.energy:
                break
            if same_fingerprint(fingerprints[i], fingerprints[leader], angles, tolerances):
                match = group
                break
        if match is None:
            groups.append([int(i)])
        else:
            match.append(int(i))
    return groups


def group_by_atoms(frames) -> dict[tuple[int, ...], list[int]]:
    """Frame indices per atom sequence (atomic numbers in order)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, atoms in enumerate(frames):
        groups.setdefault(tuple(int(z) for z in atoms.numbers), []).append(index)
    return groups


def find_minima(potential, frames, settings: FireSettings | LbfgsSettings, tolerances: DuplicateTolerances,
                progress: Progress | None = None, **charges) -> tuple[list[Minimum], dict]:
    """Minimise ``frames`` (ase.Atoms) and deduplicate: the distinct minima (sorted by energy) and
    per-run statistics (converged count, steps, force evaluations). ``charges``: total_charge (e) and
    unpaired_electrons for SO3LR models."""
    from ase import Atoms

    from ..evaluation.minimise import minimise  # JAX and the model code: only when minimising

    minima: list[Minimum] = []
    stats = {"converged": 0, "broken": 0, "steps": [], "force_evaluations": 0, "jitted_calls": 0,
             "minimise_time_s": 0.0}
    finished_before = 0
    for numbers, indices in group_by_atoms(frames).items():
        numbers = np.asarray(numbers)
        positions = np.array([frames[i].positions for i in indices])

        def report(finished, converged, offset=finished_before):
            if progress is not None:
                progress.update(offset + finished, converged=stats["converged"] + converged)

        result = minimise(potential, numbers, positions, settings, on_progress=report, **charges)
        finished_before += len(indices)
        stats["converged"] += int(result.converged.sum())
        stats["broken"] += int(result.broken.sum())
        stats["steps"].extend(result.steps.tolist())
        stats["force_evaluations"] += result.force_evaluations
        stats["jitted_calls"] += result.calls
        stats["minimise_time_s"] += result.wall_time_s
        kept = np.flatnonzero(result.converged)
        if not len(kept):
            continue
        _, torsions = backbone_torsions(numbers, result.positions[kept])
        angles = torsions is not None
        fingerprints = torsions if angles else distance_fingerprints(result.positions[kept])
        for group in distinct_minima(result.energy[kept], fingerprints, angles, tolerances):
            leader = kept[group[0]]
            minima.append(Minimum(
                atoms=Atoms(numbers=numbers, positions=result.positions[leader]),
                energy=float(result.energy[leader]), forces=result.forces[leader], fmax=float(result.fmax[leader]),
                frames=sorted(int(indices[kept[g]]) for g in group),
                torsions=torsions[group[0]] if angles else None))
        if progress is not None:
            progress.update(finished_before, converged=stats["converged"])
    minima.sort(key=lambda m: m.energy)
    return minima, stats


def write_minima(path: Path, minima: list[Minimum], extra_info: list[dict] | None = None) -> None:
    """extxyz of the minima, sorted by energy; energy (eV) and forces (eV/Å) stored as results;
    extra_info[k] (if given, for the first len(extra_info) minima) added to minimum k's info."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    lowest = minima[0].energy if minima else 0.0
    images = []
    for index, minimum in enumerate(minima):
        atoms = minimum.atoms.copy()
        atoms.info.update({"minimum": index, "relative_energy_eV": minimum.energy - lowest,
                           "frames_found": len(minimum.frames), "fmax_eV_per_A": minimum.fmax})
        if extra_info is not None and index < len(extra_info):
            atoms.info.update(extra_info[index])
        atoms.calc = SinglePointCalculator(atoms, energy=minimum.energy, forces=minimum.forces)
        images.append(atoms)
    ase.io.write(path, images, format="extxyz")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_relative_energies(path: Path, minima: list[Minimum]) -> None:
    """Histogram of E - E_min (eV) over the distinct minima."""
    plt = _pyplot()
    relative = np.array([m.energy for m in minima]) - minima[0].energy
    fig, axis = plt.subplots(figsize=(6, 4))
    axis.hist(relative, bins=min(40, max(5, len(relative) // 3)), color="tab:blue", edgecolor="white")
    axis.set(xlabel="E − E_min (eV)", ylabel="distinct minima",
             title=f"{len(minima)} distinct minima, E_min = {minima[0].energy:.3f} eV")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_ramachandran(path: Path, minima: list[Minimum]) -> None:
    """phi/psi (degrees) of every residue of every minimum, coloured by E - E_min (eV)."""
    plt = _pyplot()
    torsions = np.array([m.torsions for m in minima])
    residues = torsions.shape[1] // 2
    relative = np.array([m.energy for m in minima]) - minima[0].energy
    fig, axis = plt.subplots(figsize=(6, 5))
    markers = "osD^v<>p*h"
    for r in range(residues):
        points = axis.scatter(torsions[:, r], torsions[:, residues + r], c=relative, cmap="viridis", s=18,
                              marker=markers[r % len(markers)], label=f"residue {r + 1}", edgecolors="none")
    fig.colorbar(points, ax=axis, label="E − E_min (eV)")
    axis.set(xlim=(-180, 180), ylim=(-180, 180), xticks=range(-180, 181, 60), yticks=range(-180, 181, 60),
             xlabel="φ (degrees)", ylabel="ψ (degrees)", title=f"Ramachandran plot of {len(minima)} minima")
    axis.legend(fontsize=7, loc="lower right")
    axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_minima(potential, frames, inputs, out_dir: Path, settings: FireSettings | LbfgsSettings | None = None,
               tolerances: DuplicateTolerances = DuplicateTolerances(), show_progress: bool = True,
               harmonic_temperatures: list[float] | None = None, harmonic_max_minima: int = 50,
               **charges) -> dict:
    """Minimise ``frames`` (ase.Atoms, from :func:`read_frames` of the files ``inputs``), deduplicate and
    write ``out_dir`` (summary.json, minima.extxyz, plots). ``charges``: total_charge (e),
    unpaired_electrons (SO3LR); ``settings`` None: the default optimiser's. harmonic_temperatures (K):
    also the harmonic free energies of the lowest harmonic_max_minima minima
    (:mod:`so3k_driver.sampling.harmonic`; summary["harmonic"], free_energies.png, and
    ``free_energy_<T>K_eV`` and ``imaginary_modes`` in minima.extxyz). Returns the summary (also
    written to summary.json)."""
    if settings is None:
        settings = OPTIMIZERS[DEFAULT_OPTIMIZER]()
    if harmonic_temperatures is not None:
        if not harmonic_temperatures or any(not t > 0 for t in harmonic_temperatures):
            raise UserError(f"harmonic temperatures must be positive (K), got {list(harmonic_temperatures)}")
        if harmonic_max_minima < 1:
            raise UserError(f"the number of minima for harmonic free energies must be >= 1, got {harmonic_max_minima}")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    display = Progress(total=len(frames), description="minimising", unit="frame") if show_progress else None
    with display or contextlib.nullcontext():
        minima, stats = find_minima(potential, frames, settings, tolerances, display, **charges)
    harmonic, extra_info = None, None
    if harmonic_temperatures is not None and minima:
        harmonic = harmonic_free_energies(potential, minima, harmonic_temperatures, harmonic_max_minima,
                                          show_progress, **charges)
        extra_info = [{**{f"free_energy_{t}K_eV": f for t, f in entry["free_energy_eV"].items()},
                       **{f"free_energy_qrrho_{t}K_eV": f for t, f in entry["free_energy_qrrho_eV"].items()},
                       "imaginary_modes": entry["imaginary_modes"]} for entry in harmonic["minima"]]
    write_minima(out_dir / MINIMA, minima, extra_info)
    plots = []
    if harmonic is not None:
        plot_free_energies(out_dir / FREE_ENERGY_PLOT, harmonic)
        plots.append(FREE_ENERGY_PLOT)
    if minima:
        plot_relative_energies(out_dir / HISTOGRAM, minima)
        plots.append(HISTOGRAM)
        if all(m.torsions is not None for m in minima):
            plot_ramachandran(out_dir / RAMACHANDRAN, minima)
            plots.append(RAMACHANDRAN)
    wall = time.perf_counter() - start
    lowest = minima[0].energy if minima else None
    steps = np.asarray(stats["steps"])
    summary = {
        "frames": len(frames),
        "inputs": [str(p) for p in inputs],
        "model": potential.description,
        "converged": stats["converged"],
        "not_converged": len(frames) - stats["converged"],
        "broken": stats["broken"],
        "distinct_minima": len(minima),
        "wall_time_s": round(wall, 3),
        "minimise_time_s": round(stats["minimise_time_s"], 3),
        "frames_per_minute": round(60.0 * len(frames) / stats["minimise_time_s"], 1),
        "optimizer": settings.name,
        "fmax_eV_per_A": settings.fmax,
        "steps_mean": float(steps.mean()),
        "steps_max": int(steps.max()),
        "force_evaluations": stats["force_evaluations"],
        "jitted_calls": stats["jitted_calls"],
        "settings": {"max_steps": settings.max_steps, "max_step_A": settings.max_step,
                     "skin_A": settings.skin, "min_distance_A": settings.min_distance,
                     "steps_per_call": settings.steps_per_call,
                     "structures_per_call": settings.structures_per_call, "dtype": potential.dtype,
                     **({"memory": settings.memory, "alpha_eV_per_A2": settings.alpha,
                         "energy_rise_eV": settings.energy_rise,
                         "preconditioner": settings.preconditioner}
                        if isinstance(settings, LbfgsSettings) else {})},
        "tolerances": {"energy_eV": tolerances.energy, "angle_deg": tolerances.angle,
                       "distance_A": tolerances.distance},
        "lowest_energy_eV": lowest,
        "energies_eV": [m.energy for m in minima],
        "relative_energies_eV": [m.energy - lowest for m in minima],
        "frames_per_minimum": [len(m.frames) for m in minima],
        "plots": plots,
    }
    if minima and all(m.torsions is not None for m in minima):
        residues = len(minima[0].torsions) // 2
        summary["phi_deg"] = [np.round(m.torsions[:residues], 1).tolist() for m in minima]
        summary["psi_deg"] = [np.round(m.torsions[residues:], 1).tolist() for m in minima]
    if harmonic is not None:
        summary["harmonic"] = harmonic
    (out_dir / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n")
    return summary
