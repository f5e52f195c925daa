"""PLUMED COLVAR/HILLS readers and the metadynamics free energy from HILLS.

HILLS written by well-tempered METAD store heights already multiplied by γ/(γ-1) (checked: the
first hill of HEIGHT=1 BIASFACTOR=10 reads 1.111), so the free energy is simply F(s) = -Σ hills(s)
(up to a constant), in the HILLS energy unit (kJ/mol with the UNITS line of plumed_inputs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...ipi.properties import complete_rows
from ..settings import WALKER_MARKER


def read_plumed(path) -> dict[str, np.ndarray]:
    """Columns of a PLUMED COLVAR/HILLS file by FIELDS name; {} for a file PLUMED has not written to yet.

    PLUMED writes the FIELDS header with the first record, so a short or just-started run leaves
    an empty HILLS file (no hill deposited yet): that is not an error.
    """
    if Path(path).stat().st_size == 0:
        return {}
    names = None
    with open(path) as handle:
        for line in handle:
            if line.startswith("#! FIELDS"):
                names = line.split()[2:]
                break
    if names is None:
        raise ValueError(f"{path}: no '#! FIELDS' header")
    data = complete_rows(path, len(names))  # a killed run can leave its last line cut
    return {name: data[:, k] for k, name in enumerate(names)}


def hill_cvs(hills: dict[str, np.ndarray]) -> list[str]:
    return [name[len("sigma_"):] for name in hills if name.startswith("sigma_")]


def free_energy_from_hills(hills: dict[str, np.ndarray], grids: list[np.ndarray],
                           periods: list[float | None]) -> np.ndarray:
    """F on the grid (meshgrid 'ij' of grids), min shifted to 0; periods: None or the CV period (2π for torsions)."""
    cvs = hill_cvs(hills)
    mesh = np.meshgrid(*grids, indexing="ij")
    bias = np.zeros(mesh[0].shape)
    for k in range(len(hills["height"])):
        exponent = np.zeros_like(bias)
        for cv, axis, period in zip(cvs, mesh, periods):
            delta = axis - hills[cv][k]
            if period:
                delta = delta - period * np.round(delta / period)
            exponent += delta**2 / (2 * hills["sigma_" + cv][k] ** 2)
        bias += hills["height"][k] * np.exp(-exponent)
    free_energy = -bias
    return free_energy - free_energy.min()


def _numbered(run_dir: Path, stem: str, marker: str) -> list[Path]:
    """Files stem.<marker><k>, sorted by the integer k."""
    found = [p for p in Path(run_dir).glob(f"{stem}.{marker}*") if p.suffix[1 + len(marker):].isdigit()]
    return sorted(found, key=lambda p: int(p.suffix[1 + len(marker):]))


def walker_files(run_dir: Path, stem: str) -> list[Path]:
    """A multiple-walker run's files, sorted by walker: COLVAR.W0, COLVAR.W1, ... (stem 'COLVAR') or, as
    PLUMED names them, HILLS.0, HILLS.1, ... (stem 'HILLS'); [] for any other run."""
    return _numbered(run_dir, stem, "" if stem == "HILLS" else WALKER_MARKER)


def temperature_files(run_dir: Path, stem: str) -> list[Path]:
    """'HILLS.T0', 'HILLS.T1', ... (sorted by k), a multiple-walker run's walker files (walker_files) or
    ['HILLS'] for a single-system run."""
    numbered = _numbered(run_dir, stem, "T") or walker_files(run_dir, stem)
    if numbered:
        return numbered
    return [run_dir / stem] if (run_dir / stem).exists() else []


def pooled(columns: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The records of several walkers' COLVAR or HILLS as one file's columns, in time order (a stable sort:
    records of one time keep the walkers' order). Only columns every non-empty file has are kept."""
    columns = [c for c in columns if c]
    if not columns:
        return {}
    names = [name for name in columns[0] if all(name in c for c in columns)]
    merged = {name: np.concatenate([c[name] for c in columns]) for name in names}
    order = np.argsort(merged["time"], kind="stable") if "time" in merged else slice(None)
    return {name: values[order] for name, values in merged.items()}


def temperature_sets(run_dir: Path, stem: str) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(name, columns) per temperature for stem 'COLVAR' or 'HILLS': one per file of a REMD or a
    single-system run; a multiple-walker run's walkers pooled into one (they share one bias, so their
    frames are one sample: the reweighting factor c(t) and the hills are common to all)."""
    walkers = walker_files(run_dir, stem)
    if len(walkers) > 1:
        return [(f"{walkers[0].name}…{walkers[-1].suffix[1:]} ({len(walkers)} walkers pooled)",
                 pooled([read_plumed(p) for p in walkers]))]
    return [(p.name, read_plumed(p)) for p in temperature_files(run_dir, stem)]


def metad_option(run_dir: Path, key: str) -> str | None:
    """The value of KEY= on the METAD line of the study's PLUMED input (plumed.dat, plumed_T0.dat or
    plumed_W0.dat); None when there is no such input, no METAD line or no KEY."""
    for name in ("plumed.dat", "plumed_T0.dat", "plumed_W0.dat"):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = line.split("#")[0].split()
            if "METAD" in words:
                for word in words:
                    if word.startswith(f"{key}="):
                        return word[len(key) + 1:]
                return None
    return None


def metad_arguments(run_dir: Path) -> list[str]:
    """The CV names a METAD biases (its ARG=); [] when there is none (see metad_option)."""
    arguments = metad_option(run_dir, "ARG")
    return arguments.split(",") if arguments else []
