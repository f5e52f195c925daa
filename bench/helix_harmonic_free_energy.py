"""Harmonic free energies of Ac-Ala15-NHMe minima: is the α-helix the model's free-energy minimum at 300 K?

Each start frame is minimised (batched L-BFGS, gas phase, all pairs), its Hessian taken by central
differences of the forces (so3k_driver.evaluation.vibrations), and its energy, harmonic vibrational
free energy (quantum and classical) and classical rotational free energy reported relative to the first
frame of the reference label (default: "alpha", the shipped helix). Shapes (α and 3₁₀ H-bonds, helical
residues, end to end) are those of the minimum.

    .venv/bin/python bench/helix_harmonic_free_energy.py so3lr:/work/shared/reference/so3lr \\
        alpha=so3k_driver/data/Ac-Ala15-NHMe_folded.xyz extended=so3k_driver/data/Ac-Ala15-NHMe_ext.xyz \\
        v13_helices=docs/results/ala15_helix_forms/starts.extxyz \\
        so3lr_45ps=DIR/T-0_sim.pos_0.xyz@-1 ... --out DIR

A source is LABEL=PATH or LABEL=PATH@INDEX (ASE's index syntax: -1, ::10, -4:); i-PI trajectories are read
in Å. Writes DIR/harmonic.json (eV, cm^-1, K) and DIR/harmonic.png; prints progress lines.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from so3k_driver.evaluation import vibrations
from so3k_driver.evaluation.frames import read_structure_frames, write_extxyz
from so3k_driver.evaluation.minimise import minimise
from so3k_driver.evaluation.optimizers import LbfgsSettings
from so3k_driver.evaluation.potential import Potential
from so3k_driver.sampling import peptide
from so3k_driver.sampling.harmonic import minimum_thermochemistry
from so3k_driver.sampling.minima import group_by_atoms
from so3k_driver.units import BOLTZMANN_EV_PER_K, KJ_PER_MOL_IN_EV


def read_sources(sources: list[str]) -> list[tuple[str, object]]:
    """(label, ase.Atoms) for every frame of every LABEL=PATH[@INDEX]."""
    frames = []
    for source in sources:
        label, _, location = source.partition("=")
        path, _, index = location.partition("@")
        for atoms in read_structure_frames(path, index or ":"):
            frames.append((label, atoms))
    return frames


def describe(positions, backbone) -> dict:
    shape = peptide.helix_shape(positions, backbone)
    return {key: shape[key] for key in ("helical_residues", "helix_map", "alpha_hbonds", "three_ten_hbonds",
                                        "end_to_end_A")}


def plot(entries: list[dict], temperature: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = f"{temperature:g}"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    labels = sorted({e["label"] for e in entries})
    colours = dict(zip(labels, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, x_key, x_label in ((axes[0], "alpha_hbonds", "α H-bonds (i→i+4) of the minimum"),
                               (axes[1], "end_to_end_A", "end to end of the minimum (Å)")):
        for e in entries:
            x = e["minimum_shape"][x_key]
            ax.scatter(x, e["relative_eV"]["energy"], marker="o", facecolors="none",
                       edgecolors=colours[e["label"]])
            ax.scatter(x, e["relative_eV"]["free_energy_quantum"][key], marker="s", color=colours[e["label"]])
        ax.set_xlabel(x_label)
        ax.axhline(0.0, color="grey", lw=0.6)
    axes[0].set_ylabel("relative to the reference (eV)")
    for label in labels:
        axes[1].scatter([], [], marker="s", color=colours[label], label=f"{label}: F({key} K), harmonic")
    axes[1].scatter([], [], marker="o", facecolors="none", edgecolors="k", label="E (open)")
    axes[1].legend(fontsize=8)
    fig.suptitle("Minima: energy (open) and harmonic free energy (filled, quantum vibrations + classical rotor)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("sources", nargs="+", help="LABEL=PATH or LABEL=PATH@INDEX")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--lr-cutoff", type=float, default=0.0, help="Å; 0 = all pairs (gas phase, default)")
    parser.add_argument("--fmax", type=float, default=0.003, help="eV/Å")
    parser.add_argument("--max-steps", type=int, default=4000)
    parser.add_argument("--step", type=float, default=vibrations.DEFAULT_STEP_A, help="finite difference, Å")
    parser.add_argument("--temperatures", default="300,400", help="K, comma separated")
    parser.add_argument("--reference", default="alpha", help="label whose first frame is the zero")
    args = parser.parse_args()
    temperatures = [float(t) for t in args.temperatures.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)

    frames = read_sources(args.sources)
    potential = Potential.load(args.model, dtype=args.dtype, lr_cutoff=args.lr_cutoff or None)

    # minimise() takes one atom order; files may order the same molecule differently.
    start = time.perf_counter()
    relaxed = [None] * len(frames)
    for order, members in group_by_atoms([atoms for _, atoms in frames]).items():
        settings = LbfgsSettings(fmax=args.fmax, max_steps=args.max_steps, structures_per_call=min(8, len(members)))
        result = minimise(potential, np.array(order), np.stack([frames[k][1].positions for k in members]), settings,
                          on_progress=lambda done, converged, n=len(members): print(
                              f"minimising: {done}/{n} finished, {converged} converged, "
                              f"{time.perf_counter() - start:.0f} s", flush=True))
        print(f"minimised {len(members)} frames in {result.wall_time_s:.0f} s ({result.calls} calls)", flush=True)
        for j, k in enumerate(members):
            relaxed[k] = {"positions": result.positions[j], "energy": float(result.energy[j]),
                          "fmax": float(result.fmax[j]), "converged": bool(result.converged[j]),
                          "steps": int(result.steps[j])}

    entries = []
    for k, (label, atoms) in enumerate(frames):
        t0 = time.perf_counter()
        numbers, positions = atoms.numbers, relaxed[k]["positions"]
        backbone = peptide.find_backbone(numbers, atoms.positions)
        masses = vibrations.atomic_masses(numbers)
        entry = {
            "label": label, "frame": k, "start_shape": describe(atoms.positions, backbone),
            "start_info": {key: value for key, value in atoms.info.items() if isinstance(value, (int, float, str))},
            "minimum_shape": describe(positions, backbone),
            "energy_eV": relaxed[k]["energy"], "fmax_eV_per_A": relaxed[k]["fmax"],
            "converged": relaxed[k]["converged"], "steps": relaxed[k]["steps"],
            "principal_moments_amu_A2": [float(m) for m in vibrations.principal_moments(positions, masses)],
            # Imaginary modes (if any) are left out of the free energies and counted.
            **minimum_thermochemistry(potential, numbers, positions, temperatures, step=args.step),
        }
        entries.append(entry)
        (args.out / "harmonic_partial.json").write_text(json.dumps(entries, indent=1))  # survives a stop
        shape = entry["minimum_shape"]
        print(f"{label} #{k}: E {entry['energy_eV']:.4f} eV, fmax {entry['fmax_eV_per_A']:.4f}, "
              f"α {shape['alpha_hbonds']} 3₁₀ {shape['three_ten_hbonds']} e2e {shape['end_to_end_A']} Å, "
              f"lowest {entry['frequencies_cm1'][:3]} cm^-1, leak {entry['rigid_body_leak_cm1']:.2f}, "
              f"Hessian {time.perf_counter() - t0:.0f} s", flush=True)

    reference = next(e for e in entries if e["label"] == args.reference)
    for e in entries:
        relative = {"energy": e["energy_eV"] - reference["energy_eV"]}
        for kind in ("quantum", "classical", "quantum_qrrho", "classical_qrrho"):
            vib_key = f"vibrational_{kind}_eV"
            relative[f"free_energy_{kind}"] = {
                t: relative["energy"] + e[vib_key][t] - reference[vib_key][t]
                + e["rotational_eV"][t] - reference["rotational_eV"][t]
                for t in e[vib_key]}
        e["relative_eV"] = relative
        e["relative_kJ_per_mol"] = {"energy": relative["energy"] / KJ_PER_MOL_IN_EV,
                                    **{k: {t: v / KJ_PER_MOL_IN_EV for t, v in d.items()}
                                       for k, d in relative.items() if isinstance(d, dict)}}
    summary = {
        "model": args.model, "dtype": args.dtype, "lr_cutoff_A": args.lr_cutoff or "all pairs",
        "fmax_eV_per_A": args.fmax, "finite_difference_step_A": args.step, "temperatures_K": temperatures,
        "reference": f"{args.reference} (first frame)", "sources": args.sources,
        "kT_eV": {f"{t:g}": BOLTZMANN_EV_PER_K * t for t in temperatures},
        "units": {"energy": "eV", "frequencies": "cm^-1", "moments": "amu Å²", "end_to_end_A": "Å"},
        "wall_time_s": round(time.perf_counter() - start, 1), "minima": entries,
    }
    (args.out / "harmonic.json").write_text(json.dumps(summary, indent=1))
    minima = []
    for (label, atoms), e in zip(frames, entries):
        minimum = atoms.copy()
        minimum.positions = relaxed[e["frame"]]["positions"]
        minimum.info = {"label": label, "energy_eV": e["energy_eV"], "alpha_hbonds": e["minimum_shape"]["alpha_hbonds"],
                        "three_ten_hbonds": e["minimum_shape"]["three_ten_hbonds"]}
        minima.append(minimum)
    write_extxyz(minima, args.out / "minima.extxyz")
    plot(entries, temperatures[0], args.out / "harmonic.png")
    print(f"{'label':>14} {'α':>3} {'3₁₀':>4} {'e2e Å':>6} {'ΔE eV':>8} " +
          " ".join(f"{'ΔF(' + f'{t:g}' + ' K) q/cl':>18}" for t in temperatures) + "  imag")
    for e in entries:
        s = e["minimum_shape"]
        row = " ".join(f"{e['relative_eV']['free_energy_quantum'][f'{t:g}']:8.3f}/"
                       f"{e['relative_eV']['free_energy_classical'][f'{t:g}']:8.3f} " for t in temperatures)
        print(f"{e['label']:>14} {s['alpha_hbonds']:3d} {s['three_ten_hbonds']:4d} {s['end_to_end_A']:6.1f} "
              f"{e['relative_eV']['energy']:8.3f} {row} {e['imaginary_modes']}")


if __name__ == "__main__":
    main()
