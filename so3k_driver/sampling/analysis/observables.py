"""Per-frame observables of a sampling run, per temperature, and their plots (PNG).

From the demultiplexed trajectories (ipi_outputs.py): end-to-end distance (Å; carbonyl C of the
acetyl cap and of the last residue), backbone radius of gyration (Å), helix fraction (residues in
the α basin of the Ramachandran plot, and formed i→i+4 hydrogen bonds), phi/psi (degrees); the
series, helix-fraction and Ramachandran plots of ``so3k analyze`` (report.py), and ``figure``, the
non-interactive matplotlib figure every plot of this package's analysis report draws on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import peptide
from . import ipi_outputs


@dataclass
class TemperatureObservables:
    temperature: float          # K
    time: np.ndarray            # ps
    end_to_end: np.ndarray      # Å
    gyration: np.ndarray        # Å
    helix_torsion: np.ndarray   # fraction of residues in the α basin, per frame
    helix_hbond: np.ndarray     # fraction of i→i+4 H-bonds formed (α-helix), per frame
    phi: np.ndarray             # (F, residues) degrees
    psi: np.ndarray
    three_ten_hbond: np.ndarray  # fraction of i→i+3 H-bonds formed (3₁₀-helix, whose φ/ψ count as helical too)


def observables(symbols, series: list[ipi_outputs.ReplicaSeries]) -> list[TemperatureObservables]:
    backbone = peptide.find_backbone(ipi_outputs.atomic_numbers_of(symbols), series[0].positions[0])
    first, last = backbone.end_to_end_atoms()
    result = []
    for s in series:
        phi = peptide.dihedrals(s.positions, backbone.phi_atoms())
        psi = peptide.dihedrals(s.positions, backbone.psi_atoms())
        hbonds = {span: peptide.helix_hbonds(s.positions, backbone, span=span).mean(axis=1)
                  if backbone.helix_hbond_pairs(span) else np.zeros(len(phi)) for span in (4, 3)}
        result.append(TemperatureObservables(
            s.temperature, s.time, peptide.distance(s.positions, first, last),
            peptide.radius_of_gyration(s.positions, backbone.heavy_backbone()),
            peptide.helical_residues(phi, psi).mean(axis=1), hbonds[4], phi, psi, three_ten_hbond=hbonds[3]))
    return result


def figure(rows=1, cols=2, size=(10, 4)):
    """(pyplot, figure, axes) of a rows × cols figure of ``size`` inches, on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(rows, cols, figsize=size)


def series_plot(path, data, attribute, label):
    plt, fig, (left, right) = figure()
    for d in data:
        values = getattr(d, attribute)
        left.plot(d.time, values, lw=0.8, label=f"{d.temperature:g} K")
        right.hist(values, bins=30, density=True, histtype="step", label=f"{d.temperature:g} K")
    left.set(xlabel="time (ps)", ylabel=label)
    right.set(xlabel=label, ylabel=f"probability density (1/{label.split('(')[-1].rstrip(')')})")
    left.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def helix_plot(path, data):
    plt, fig, (left, right) = figure()
    for d in data:
        left.plot(d.time, d.helix_torsion, lw=0.8, label=f"{d.temperature:g} K (torsions)")
    temperatures = [d.temperature for d in data]
    right.plot(temperatures, [d.helix_torsion.mean() for d in data], "o-", label="α-basin residues")
    right.plot(temperatures, [d.helix_hbond.mean() for d in data], "s--", label="i→i+4 H-bonds (α)")
    right.plot(temperatures, [d.three_ten_hbond.mean() for d in data], "^:", label="i→i+3 H-bonds (3₁₀)")
    left.set(xlabel="time (ps)", ylabel="helix fraction (dimensionless, 0–1)", ylim=(-0.02, 1.02))
    right.set(xlabel="temperature (K)", ylabel="mean helix fraction (dimensionless)", ylim=(-0.02, 1.02))
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ramachandran_plot(path, data):
    plt, fig, axes = figure(1, len(data[:2]), size=(5 * len(data[:2]), 4.5))
    axes = np.atleast_1d(axes)
    for ax, d in zip(axes, data[:1] + data[-1:] if len(data) > 1 else data):
        ax.hist2d(d.phi.ravel(), d.psi.ravel(), bins=60, range=[[-180, 180], [-180, 180]], cmap="Blues")
        ax.add_patch(plt.Rectangle((peptide.HELIX_PHI[0], peptide.HELIX_PSI[0]), np.diff(peptide.HELIX_PHI)[0],
                                   np.diff(peptide.HELIX_PSI)[0], fill=False, ec="red", lw=1, label="α basin"))
        ax.set(xlabel="φ (degrees)", ylabel="ψ (degrees)", title=f"all residues, {d.temperature:g} K",
               xlim=(-180, 180), ylim=(-180, 180))
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
