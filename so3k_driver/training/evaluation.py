"""Error metrics: energies per structure and per atom (eV, eV/atom), force components (eV/Å), stress
components (eV/Å^3, structures with a stress label only)."""

from __future__ import annotations

import numpy as np


def error_metrics(pred_energies, ref_energies, atom_counts, pred_forces, ref_forces,
                  pred_stress=None, ref_stress=None) -> dict[str, float]:
    """MAE/RMSE of energies (eV per structure and eV per atom), forces (eV/Å per component) and, when
    given, stress ((S, 3, 3) eV/Å^3; reference NaN = no label, left out).

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
    } | _stress_metrics(pred_stress, ref_stress)


def atom_target_metrics(name: str, predicted, reference) -> dict[str, float]:
    """MAE and RMSE of a per-atom target (e.g. partial_charges in e, hirshfeld_ratios) over the atoms that
    have a label (reference NaN = none): {name_mae, name_rmse}; {} when no atom has one.
    predicted, reference: lists of (N_i,) arrays."""
    diff = np.concatenate([np.asarray(p, np.float64).reshape(-1) - np.asarray(r, np.float64).reshape(-1)
                           for p, r in zip(predicted, reference)])
    diff = diff[np.isfinite(diff)]
    if not diff.size:
        return {}
    return {f"{name}_mae": float(np.mean(np.abs(diff))), f"{name}_rmse": float(np.sqrt(np.mean(diff ** 2)))}


def force_errors_by_element(numbers, pred_forces, ref_forces) -> dict[str, dict]:
    """Force MAE and RMSE (eV/Å per component) of each element's atoms: {symbol: {mae_eV_per_A,
    rmse_eV_per_A, atoms}}, elements in order of atomic number. numbers: list of (N_i,) arrays."""
    from ..evaluation.validation import symbol

    z = np.concatenate([np.asarray(n).reshape(-1) for n in numbers])
    df = np.concatenate([np.asarray(p, np.float64).reshape(-1, 3) - np.asarray(r, np.float64).reshape(-1, 3)
                         for p, r in zip(pred_forces, ref_forces)])
    if len(z) != len(df):
        raise ValueError(f"{len(z)} atomic numbers for {len(df)} force rows")
    errors = {}
    for element in np.unique(z):
        own = df[z == element]
        errors[symbol(int(element))] = {"mae_eV_per_A": float(np.mean(np.abs(own))),
                                        "rmse_eV_per_A": float(np.sqrt(np.mean(own ** 2))), "atoms": len(own)}
    return errors


def format_element_errors(by_element: dict[str, dict]) -> str:
    return "forces MAE by element (meV/Å): " + ", ".join(
        f"{symbol} {e['mae_eV_per_A'] * 1e3:.1f} ({e['atoms']} atom{'' if e['atoms'] == 1 else 's'})"
        for symbol, e in by_element.items())


def _stress_metrics(pred, ref) -> dict[str, float]:
    if pred is None or ref is None:
        return {}
    ref = np.asarray(ref, np.float64)
    labelled = np.isfinite(ref).all(axis=(1, 2))
    if not labelled.any():
        return {}
    ds = (np.asarray(pred, np.float64)[labelled] - ref[labelled]).reshape(-1)
    return {"stress_mae_eV_per_A3": float(np.mean(np.abs(ds))), "stress_rmse_eV_per_A3": float(np.sqrt(np.mean(ds ** 2)))}


_TARGET_UNITS = {"partial_charges": " e", "hirshfeld_ratios": ""}  # per-atom targets (data.ATOM_TARGETS)


def format_metrics(m: dict[str, float]) -> str:
    return (f"energy MAE {m['energy_mae_eV'] * 1e3:.2f} meV (RMSE {m['energy_rmse_eV'] * 1e3:.2f} meV) per structure, "
            f"{m['energy_per_atom_mae_eV'] * 1e3:.3f} meV/atom; forces MAE {m['forces_mae_eV_per_A'] * 1e3:.2f} meV/Å "
            f"(RMSE {m['forces_rmse_eV_per_A'] * 1e3:.2f} meV/Å)"
            + (f"; stress MAE {m['stress_mae_eV_per_A3'] * 1e3:.3f} meV/Å³" if "stress_mae_eV_per_A3" in m else "")
            + "".join(f"; {name.replace('_', ' ')} RMSE {m[f'{name}_rmse']:.4g}{unit}"
                      for name, unit in _TARGET_UNITS.items() if f"{name}_rmse" in m)
            + f" on {m['num_structures']} structures")
