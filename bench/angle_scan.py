"""Energy along a collapsing N–Cα–Hα angle of Ac-Ala15-NHMe, students against SO3LR (issue #11).

    python bench/angle_scan.py default docs/results/so3lr_student_v15/student_v15_e6.so3k \
        --reference so3lr:/work/shared/reference/so3lr --out docs/results/.../angle_scan

Student v13's folding study visits N(i)···Hα(i) distances of 1.34–1.49 Å (the angle near 65°, against
~108° at rest) in brief episodes at 347–500 K, which SO3LR's study never reaches (bench/close_contacts.py).
This scan shows why: on the bundled folded helix, for residues 3, 8 and 13, Hα turns about Cα in the
N–Cα–Hα plane (the C–H bond length kept) from the rest angle down to 50°; each model's energy relative to its
own at the rest angle (eV, float64, gas phase, all pairs). Writes angle_scan.json and angle_scan.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESIDUES = (2, 7, 12)  # 0-based: residues 3, 8 and 13
ANGLES_DEG = np.arange(50.0, 112.0, 4.0)


def hydrogen_alpha(numbers, positions, ca: int) -> int:
    """The hydrogen bonded to Cα (the one nearest to it)."""
    hydrogens = [i for i in range(len(numbers)) if numbers[i] == 1]
    return min(hydrogens, key=lambda i: np.linalg.norm(positions[i] - positions[ca]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="MODEL specs")
    parser.add_argument("--reference", required=True, help="e.g. so3lr:DIR")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import ase.io
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from make_angle_bend_variants import bent  # bench/, next to this script

    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.evaluation.topology import atom_label
    from so3k_driver.sampling.peptide import find_backbone
    from so3k_driver.sampling.plumed_inputs import bundled_structure

    atoms = ase.io.read(bundled_structure("Ac-Ala15-NHMe_folded.xyz"))
    numbers, positions = atoms.numbers, atoms.positions.astype(np.float64)
    backbone = find_backbone(numbers, positions)
    specs = [args.reference] + args.models
    potentials = {spec: Potential.load(spec, dtype="float64", lr_cutoff=None) for spec in specs}
    record = {"structure": "Ac-Ala15-NHMe_folded.xyz (bundled)", "reference": args.reference, "scans": []}
    fig, axes = plt.subplots(1, len(RESIDUES), figsize=(5 * len(RESIDUES), 4), sharey=True)
    for ax, residue in zip(axes, RESIDUES):
        n, ca = backbone.n[residue], backbone.ca[residue]
        h = hydrogen_alpha(numbers, positions, ca)
        v1, v2 = positions[n] - positions[ca], positions[h] - positions[ca]
        rest = float(np.degrees(np.arccos(v1 @ v2 / np.linalg.norm(v1) / np.linalg.norm(v2))))
        angles = np.append(ANGLES_DEG, rest)
        frames = np.stack([bent(positions, n, ca, h, a) for a in angles])  # make_angle_bend_variants.bent
        scan = {"residue": residue + 1, "atoms": [atom_label(numbers, i) for i in (n, ca, h)], "rest_angle_deg": rest,
                "angles_deg": ANGLES_DEG.tolist(), "n_h_distance_A": np.linalg.norm(frames[:-1, h] - frames[:-1, n], axis=1).tolist(),
                "energy_eV": {}}
        for spec, potential in potentials.items():
            energies = np.ravel(potential.evaluate(np.broadcast_to(numbers, (len(angles), len(numbers))), frames).energy)
            relative = energies[:-1] - energies[-1]
            scan["energy_eV"][spec] = relative.tolist()
            ax.plot(ANGLES_DEG, relative, marker="o" if spec == args.reference else ".", label=spec.split("/")[-1])
        record["scans"].append(scan)
        ax.set_title(f"residue {residue + 1}: {'–'.join(scan['atoms'])} (rest {rest:.0f}°)")
        ax.set_xlabel("N–Cα–Hα angle (degrees)")
        ax.axvline(rest, color="grey", lw=0.5)
        print(f"residue {residue + 1} ({'–'.join(scan['atoms'])}, rest {rest:.1f}°): energy at 66° / 58° (eV): "
              + "; ".join(f"{spec.split('/')[-1]} {np.interp(66, ANGLES_DEG, scan['energy_eV'][spec]):.2f} / "
                          f"{np.interp(58, ANGLES_DEG, scan['energy_eV'][spec]):.2f}" for spec in specs))
    axes[0].set_ylabel("energy − energy at the rest angle (eV)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "angle_scan.png", dpi=110)
    (out / "angle_scan.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}/angle_scan.json and angle_scan.png")


if __name__ == "__main__":
    main()
