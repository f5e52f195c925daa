"""Basin free energies from harmonic minima against metadynamics: Ac-Ala3-NHMe, φ/ψ basins at 300 K.

Harmonic superposition: each distinct minimum i of ``so3k minima --harmonic`` contributes
exp(-F_i / kT) to the basin of its residue's (φ, ψ), F_i = E_i + F_vib,i + F_rot,i, so

    F_B = -kT ln sum_{i in B} exp(-F_i / kT),  reported relative to the reference basin (kJ/mol),

with classical vibrations (what classical MD samples; mass independent) and with quantum ones, each also
with Grimme's quasi-RRHO entropy below ~100 cm^-1 (when the minima have it). The basins
and their assignment are those of the metadynamics analysis (so3k_driver.sampling.analysis.free_energy),
and the metadynamics numbers (with their two-halves difference) come from its free_energy.json.

    .venv/bin/python bench/harmonic_basins.py MINIMA_DIR/summary.json METAD/free_energy.json --out DIR

Writes DIR/harmonic_basins.json and DIR/harmonic_basins.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from so3k_driver.sampling.analysis.free_energy import RAMACHANDRAN_BASINS, assign_basins
from so3k_driver.units import BOLTZMANN_EV_PER_K, KJ_PER_MOL_IN_EV


def basin_free_energies(free_energies_eV: np.ndarray, basin_of: np.ndarray, temperature: float) -> dict:
    """-kT ln sum exp(-F/kT) per basin index (kJ/mol, absolute up to the common shift), NaN when empty."""
    kt = BOLTZMANN_EV_PER_K * temperature
    shift = free_energies_eV.min()
    out = {}
    for b, basin in enumerate(RAMACHANDRAN_BASINS):
        members = free_energies_eV[basin_of == b]
        out[basin.name] = (float((-kt * np.log(np.exp(-(members - shift) / kt).sum())) / KJ_PER_MOL_IN_EV)
                           if len(members) else float("nan"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("minima_summary", type=Path)
    parser.add_argument("metad_free_energy", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--residue", type=int, default=2, help="1-based residue whose φ/ψ define the basin")
    args = parser.parse_args()
    summary = json.loads(args.minima_summary.read_text())
    metad = json.loads(args.metad_free_energy.read_text())
    harmonic = summary["harmonic"]
    count = harmonic["minima_computed"]
    temperature = float(metad["temperature_K"])
    key = f"{temperature:g}"
    if key not in harmonic["free_energy_eV"]:
        raise SystemExit(f"the minima have no harmonic free energies at {key} K")
    r = args.residue - 1
    phi = np.array([angles[r] for angles in summary["phi_deg"][:count]])
    psi = np.array([angles[r] for angles in summary["psi_deg"][:count]])
    basin_of = assign_basins(phi, psi)
    entries = harmonic["minima"]
    energy = np.array([e["energy_eV"] for e in entries])
    flavours = {"energy_only": energy}
    for kind in ("classical", "quantum", "classical_qrrho", "quantum_qrrho"):
        if all(f"vibrational_{kind}_eV" in e for e in entries):  # minima before quasi-RRHO have none
            flavours[kind] = energy + np.array([e[f"vibrational_{kind}_eV"][key] + e["rotational_eV"][key]
                                                for e in entries])
    reference = metad["reference_basin"]
    table = {}
    for name, values in flavours.items():
        absolute = basin_free_energies(values, basin_of, temperature)
        table[name] = {b: round(f - absolute[reference], 3) for b, f in absolute.items()}
    names = [b.name for b in RAMACHANDRAN_BASINS]
    result = {
        "temperature_K": temperature, "residue": args.residue, "reference_basin": reference,
        "minima": count, "outside_every_basin": int((basin_of < 0).sum()),
        "minima_per_basin": {n: int((basin_of == b).sum()) for b, n in enumerate(names)},
        "with_imaginary_modes": harmonic["with_imaginary_modes"],
        "harmonic_kJ_per_mol": table,
        "metadynamics_kJ_per_mol": {n: metad["basins"][n]["F_kJmol"] for n in names if n in metad["basins"]},
        "metadynamics_half_difference_kJ_per_mol": {n: metad["basins"][n]["half_difference"]
                                                    for n in names if n in metad["basins"]},
        "sources": {"minima": str(args.minima_summary), "metadynamics": str(args.metad_free_energy)},
        "units": "kJ/mol, relative to the reference basin",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "harmonic_basins.json").write_text(json.dumps(result, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(names))
    fig, axis = plt.subplots(figsize=(8, 4.2))
    metad_values = [result["metadynamics_kJ_per_mol"].get(n, np.nan) for n in names]
    errors = [result["metadynamics_half_difference_kJ_per_mol"].get(n, 0.0) for n in names]
    labels = {"classical": "harmonic, classical vibrations", "quantum": "harmonic, quantum vibrations",
              "classical_qrrho": "quasi-RRHO, classical", "quantum_qrrho": "quasi-RRHO, quantum",
              "energy_only": "minimum energies only"}
    shown = [f for f in labels if f in table]
    width = 0.8 / (len(shown) + 1)
    axis.bar(x - 0.4 + width / 2, metad_values, width, yerr=errors, capsize=3, label="metadynamics (error: halves)")
    for k, flavour in enumerate(shown):
        axis.bar(x - 0.4 + (k + 1.5) * width, [table[flavour][n] for n in names], width, label=labels[flavour])
    axis.set_xticks(x, [f"{n}\n({result['minima_per_basin'][n]} minima)" for n in names], fontsize=8)
    axis.set_ylabel(f"F − F({reference}) (kJ/mol), {key} K")
    axis.axhline(0, color="grey", lw=0.6)
    axis.legend(fontsize=7)
    axis.set_title(f"Ac-Ala3-NHMe basins of residue {args.residue}: harmonic superposition of {count} minima "
                   "against metadynamics", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "harmonic_basins.png", dpi=120)
    print(json.dumps({k: result[k] for k in ("minima_per_basin", "harmonic_kJ_per_mol", "metadynamics_kJ_per_mol",
                                             "metadynamics_half_difference_kJ_per_mol")}, indent=1))


if __name__ == "__main__":
    main()
