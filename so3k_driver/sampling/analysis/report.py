"""``so3k analyze RUN_DIR``: per-temperature observables, plots (PNG) and a markdown summary.

Observables (from the demultiplexed trajectories): end-to-end distance (Å; carbonyl C of the acetyl
cap and of the last residue), backbone radius of gyration (Å), helix fraction (residues in the
α basin of the Ramachandran plot, and formed i→i+4 hydrogen bonds), phi/psi (degrees); free
energy from HILLS (kJ/mol); for a committee model, its uncertainty over time (uncertainty.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import peptide
from . import ipi_outputs, plumed_files, spectrum, uncertainty

PLOTS = ("end_to_end.png", "radius_of_gyration.png", "helix_fraction.png", "free_energy.png", "ramachandran.png")


@dataclass
class TemperatureObservables:
    temperature: float          # K
    time: np.ndarray            # ps
    end_to_end: np.ndarray      # Å
    gyration: np.ndarray        # Å
    helix_torsion: np.ndarray   # fraction of residues in the α basin, per frame
    helix_hbond: np.ndarray     # fraction of i→i+4 H-bonds formed, per frame
    phi: np.ndarray             # (F, residues) degrees
    psi: np.ndarray


def observables(symbols, series: list[ipi_outputs.ReplicaSeries]) -> list[TemperatureObservables]:
    from ase.data import atomic_numbers

    numbers = np.array([atomic_numbers[s] for s in symbols])
    backbone = peptide.find_backbone(numbers, series[0].positions[0])
    first, last = backbone.end_to_end_atoms()
    result = []
    for s in series:
        phi = peptide.dihedrals(s.positions, backbone.phi_atoms())
        psi = peptide.dihedrals(s.positions, backbone.psi_atoms())
        hbonds = peptide.helix_hbonds(s.positions, backbone) if backbone.num_residues >= 4 else np.zeros((len(phi), 1))
        result.append(TemperatureObservables(
            s.temperature, s.time, peptide.distance(s.positions, first, last),
            peptide.radius_of_gyration(s.positions, backbone.heavy_backbone()),
            peptide.helical_residues(phi, psi).mean(axis=1), hbonds.mean(axis=1), phi, psi))
    return result


def _figure(rows=1, cols=2, size=(10, 4)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(rows, cols, figsize=size)


def _series_plot(path, data, attribute, label):
    plt, fig, (left, right) = _figure()
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


def _helix_plot(path, data):
    plt, fig, (left, right) = _figure()
    for d in data:
        left.plot(d.time, d.helix_torsion, lw=0.8, label=f"{d.temperature:g} K (torsions)")
    temperatures = [d.temperature for d in data]
    right.plot(temperatures, [d.helix_torsion.mean() for d in data], "o-", label="α-basin residues")
    right.plot(temperatures, [d.helix_hbond.mean() for d in data], "s--", label="i→i+4 H-bonds")
    left.set(xlabel="time (ps)", ylabel="helix fraction (dimensionless, 0–1)", ylim=(-0.02, 1.02))
    right.set(xlabel="temperature (K)", ylabel="mean helix fraction (dimensionless)", ylim=(-0.02, 1.02))
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ramachandran_plot(path, data):
    plt, fig, axes = _figure(1, len(data[:2]), size=(5 * len(data[:2]), 4.5))
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


def free_energy_profiles(run_dir: Path, temperatures):
    """[(label, cvs, grids, F kJ/mol)] per HILLS file."""
    profiles = []
    for k, path in enumerate(plumed_files.temperature_files(run_dir, "HILLS")):
        hills = plumed_files.read_plumed(path)
        if len(hills.get("height", ())) == 0:
            continue
        cvs = plumed_files.hill_cvs(hills)
        torsion = [cv.startswith(("phi", "psi")) for cv in cvs]
        grids, periods = [], []
        for cv, is_torsion in zip(cvs, torsion):
            if is_torsion:
                grids.append(np.linspace(-np.pi, np.pi, 73)); periods.append(2 * np.pi)
            else:
                low, high = hills[cv].min(), hills[cv].max()
                pad = 4 * hills["sigma_" + cv].max()
                grids.append(np.linspace(max(0.0, low - pad), high + pad, 200)); periods.append(None)
        label = f"{temperatures[k]:g} K" if k < len(temperatures) else path.name
        profiles.append((label, cvs, grids, plumed_files.free_energy_from_hills(hills, grids, periods)))
    return profiles


def _free_energy_plot(path, profiles):
    plt, fig, ax = _figure(1, 1, size=(6, 4.5))
    if not profiles:
        ax.text(0.5, 0.5, "no hills deposited", ha="center", transform=ax.transAxes)
    elif len(profiles[0][1]) == 1:
        for label, cvs, grids, f in profiles:
            ax.plot(grids[0], f, label=label)
        unit = "Å" if not profiles[0][1][0].startswith(("phi", "psi")) else "rad"
        ax.set(xlabel=f"{profiles[0][1][0]} ({unit})", ylabel="free energy (kJ/mol)")
        ax.legend(fontsize=7)
    else:
        label, cvs, grids, f = profiles[0]
        image = ax.contourf(np.degrees(grids[0]), np.degrees(grids[1]), f.T, levels=20, cmap="viridis")
        fig.colorbar(image, ax=ax, label="free energy (kJ/mol)")
        ax.set(xlabel=f"{cvs[0]} (degrees)", ylabel=f"{cvs[1]} (degrees)", title=f"metadynamics FES, {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def analyze(run_dir: Path, out_dir: Path | None = None,
            uncertainty_threshold: float = uncertainty.DEFAULT_THRESHOLD_MEV_PER_A) -> Path:
    """Write the plots and summary.md into out_dir (default run_dir/analysis); returns the summary path.

    uncertainty_threshold (meV/Å): a committee run's frames whose largest per-atom force spread
    exceeds it are flagged (plot and summary); a run without committee uncertainty gets neither."""
    threshold = uncertainty.check_threshold(uncertainty_threshold)
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "analysis"
    out_dir.mkdir(parents=True, exist_ok=True)
    symbols, series, breakages = ipi_outputs.demultiplex(run_dir)
    data = observables(symbols, series)
    _series_plot(out_dir / "end_to_end.png", data, "end_to_end", "end-to-end distance (Å)")
    _series_plot(out_dir / "radius_of_gyration.png", data, "gyration", "radius of gyration (Å)")
    _helix_plot(out_dir / "helix_fraction.png", data)
    profiles = free_energy_profiles(run_dir, [d.temperature for d in data])
    _free_energy_plot(out_dir / "free_energy.png", profiles)
    _ramachandran_plot(out_dir / "ramachandran.png", data)
    exchanges = ipi_outputs.exchange_acceptance(run_dir)
    hills = {p.name: len(plumed_files.read_plumed(p).get("height", ()))
             for p in plumed_files.temperature_files(run_dir, "HILLS")}
    replicas = uncertainty.replica_uncertainties(run_dir)
    committee = uncertainty.summary(replicas, threshold) if replicas else None
    if replicas:
        uncertainty.plot(out_dir / uncertainty.PLOT, replicas, threshold)
    summary = _write_summary(out_dir, run_dir, data, exchanges, hills, breakages, committee)
    # Vibrational spectrum when velocities (or positions) are written often enough; one summary line either way.
    with summary.open("a") as handle:
        handle.write("\n" + spectrum.write_spectrum(run_dir, out_dir) + "\n")
    return summary


def _write_summary(out_dir, run_dir, data, exchanges, hills, breakages=(), committee=None) -> Path:
    lines = [f"# Sampling analysis of `{run_dir}`", "",
             f"Frames per temperature: {', '.join(str(len(d.time)) for d in data)}; "
             f"simulated time per replica: {data[0].time[-1]:.3f} ps.", ""]
    for b in breakages:
        lines += [f"**Warning: configuration {b.system} broke apart** at {b.time:.2f} ps while at {b.temperature:g} K "
                  f"({b.fragments} bonded fragments): the model left the region it describes. Its {b.excluded_frames} "
                  "frames from then on are left out of everything below; continue only from a restart before that "
                  "time, or with a model trained on such geometries.", ""]
    if exchanges:
        lines.append(f"Replica exchange: {exchanges[0]} swap records in the remd_idx file (i-PI writes one per accepted exchange).")
    if hills:
        lines.append("Hills deposited: " + ", ".join(f"{k}: {v}" for k, v in hills.items()) + ".")
    lines += ["", "| T (K) | end-to-end first→last (Å) | mean end-to-end (Å) | mean Rg (Å) | helix fraction, torsions | "
              "helix fraction, i→i+4 H-bonds | helix fraction, last 25 % |", "|---|---|---|---|---|---|---|"]
    summary = []
    for d in data:
        tail = d.helix_torsion[int(0.75 * len(d.helix_torsion)):]
        lines.append(f"| {d.temperature:g} | {d.end_to_end[0]:.1f} → {d.end_to_end[-1]:.1f} | {d.end_to_end.mean():.1f} | "
                     f"{d.gyration.mean():.2f} | {d.helix_torsion.mean():.2f} | {d.helix_hbond.mean():.2f} | {tail.mean():.2f} |")
        summary.append({"temperature_K": d.temperature, "end_to_end_first_A": float(d.end_to_end[0]),
                        "end_to_end_last_A": float(d.end_to_end[-1]), "end_to_end_mean_A": float(d.end_to_end.mean()),
                        "gyration_mean_A": float(d.gyration.mean()), "helix_fraction_torsion": float(d.helix_torsion.mean()),
                        "helix_fraction_hbond": float(d.helix_hbond.mean())})
    lines += ["", "Helix: residue with φ in [-100, -30]° and ψ in [-80, -5]°; H-bond: O(i)···H–N(i+4) < 2.5 Å.",
              "Free energy from HILLS: F(s) = -Σ hills (well-tempered heights as written by PLUMED), kJ/mol.", "",
              "Plots: " + ", ".join(f"[{p}]({p})" for p in PLOTS), ""]
    if committee is not None:
        lines += uncertainty.markdown(committee)
    broken = [vars(b) for b in breakages]
    (out_dir / "summary.json").write_text(json.dumps({"temperatures": summary, "exchanges": exchanges, "hills": hills,
                                                      "broken_configurations": broken,
                                                      "committee_uncertainty": committee}, indent=1) + "\n")
    path = out_dir / "summary.md"
    path.write_text("\n".join(lines))
    return path
