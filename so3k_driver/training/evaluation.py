"""Error metrics: energies per structure and per atom (eV, eV/atom), force components (eV/Å)."""

from __future__ import annotations

import numpy as np


def error_metrics(pred_energies, ref_energies, atom_counts, pred_forces, ref_forces) -> dict[str, float]:
    """MAE/RMSE of energies (eV per structure and eV per atom) and forces (eV/Å per component).

    pred_forces, ref_forces: lists of (N_i, 3) arrays or stacked arrays.
    """
    de = np.asarray(pred_energies, np.float64) - np.asarray(ref_energies, np.float64)
    de_atom = de / np.asarray(atom_counts, np.float64)
    df = np.concatenate([np.asarray(p, np.float64).reshape(-1) - np.asarray(r, np.float64).reshape(-1)
                         for p, r in zip(pred_forces, ref_forces)])
    return {
        "energy_mae_eV": float(np.mean(np.abs(de))),
        "energy_rmse_eV": float(np.sqrt(np.mean(de ** 2))),
        "energy_per_atom_mae_eV": float(np.mean(np.abs(de_atom))),
        "energy_per_atom_rmse_eV": float(np.sqrt(np.mean(de_atom ** 2))),
        "forces_mae_eV_per_A": float(np.mean(np.abs(df))),
        "forces_rmse_eV_per_A": float(np.sqrt(np.mean(df ** 2))),
        "num_structures": int(len(de)),
    }


def format_metrics(m: dict[str, float]) -> str:
    return (f"energy MAE {m['energy_mae_eV'] * 1e3:.2f} meV (RMSE {m['energy_rmse_eV'] * 1e3:.2f} meV) per structure, "
            f"{m['energy_per_atom_mae_eV'] * 1e3:.3f} meV/atom; forces MAE {m['forces_mae_eV_per_A'] * 1e3:.2f} meV/Å "
            f"(RMSE {m['forces_rmse_eV_per_A'] * 1e3:.2f} meV/Å) on {m['num_structures']} structures")
