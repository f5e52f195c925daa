"""PLUMED COLVAR/HILLS readers and the metadynamics free energy from HILLS.

HILLS written by well-tempered METAD store heights already multiplied by γ/(γ-1) (checked: the
first hill of HEIGHT=1 BIASFACTOR=10 reads 1.111), so the free energy is simply F(s) = -Σ hills(s)
(up to a constant), in the HILLS energy unit (kJ/mol with the UNITS line of plumed_inputs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...ipi.properties import complete_rows


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


def temperature_files(run_dir: Path, stem: str) -> list[Path]:
    """'HILLS.T0', 'HILLS.T1', ... (sorted by k) or ['HILLS'] for a single-temperature run."""
    numbered = sorted(run_dir.glob(f"{stem}.T*"), key=lambda p: int(p.suffix[2:]) if p.suffix[2:].isdigit() else 0)
    numbered = [p for p in numbered if p.suffix[2:].isdigit()]
    if numbered:
        return numbered
    return [run_dir / stem] if (run_dir / stem).exists() else []


def metad_arguments(run_dir: Path) -> list[str]:
    """The CV names a METAD biases (its ARG=), from the study's PLUMED input (plumed.dat or
    plumed_T0.dat); [] when there is none or it has no METAD line."""
    for name in ("plumed.dat", "plumed_T0.dat"):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            words = line.split("#")[0].split()
            if "METAD" in words:
                for word in words:
                    if word.startswith("ARG="):
                        return word[len("ARG="):].split(",")
    return []
