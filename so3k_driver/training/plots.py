"""Matplotlib (Agg) plots: learning curve from the metrics log, parity plots. Units: meV, meV/Å."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def learning_curve(metrics_path: str | Path, output: str | Path) -> Path:
    rows = [json.loads(r) for r in Path(metrics_path).read_text().splitlines() if r.strip()]
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [r["epoch"] for r in rows]
    ax1.semilogy(epochs, [r["train_loss"] for r in rows], label="train loss")
    valid = [r for r in rows if "valid_loss" in r]
    ax1.semilogy([r["epoch"] for r in valid], [r["valid_loss"] for r in valid], label="validation loss (EMA)")
    ax1.set_xlabel("epoch"); ax1.set_ylabel("loss"); ax1.legend()
    ax2.semilogy([r["epoch"] for r in valid], [1e3 * r["valid_forces_mae_eV_per_A"] for r in valid], label="force MAE (meV/Å)")
    ax2.semilogy([r["epoch"] for r in valid], [1e3 * r["valid_energy_mae_eV"] for r in valid], label="energy MAE (meV)")
    ax2.set_xlabel("epoch"); ax2.set_ylabel("validation error"); ax2.legend()
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return Path(output)


def parity_plot(ref_energies, pred_energies, ref_forces, pred_forces, output: str | Path, title: str = "") -> Path:
    """Energies relative to the reference mean (eV) and force components (eV/Å)."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
    ref_e, pred_e = np.asarray(ref_energies), np.asarray(pred_energies)
    offset = ref_e.mean()
    ax1.scatter(ref_e - offset, pred_e - offset, s=6)
    rf = np.concatenate([np.ravel(f) for f in ref_forces]); pf = np.concatenate([np.ravel(f) for f in pred_forces])
    ax2.scatter(rf, pf, s=2, alpha=0.4)
    for ax, label in ((ax1, "energy - mean(reference) (eV)"), (ax2, "force component (eV/Å)")):
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"reference {label}"); ax.set_ylabel(f"model {label}")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return Path(output)
