"""Which helix does a model prefer? Relax labelled Ac-Ala_n-NHMe frames with two models and compare (issue #13).

    python bench/helix_forms.py --model default --reference so3lr:DIR --out OUT.json \
        "alpha=so3k_driver/data/Ac-Ala15-NHMe_folded.xyz" "v13 T-4=runs/ala15_folding_v13/T-4_sim.pos_0.xyz" ...

Each LABEL=FILE takes the last frame of FILE (LABEL=FILE@N its frame N). Both models relax every frame (L-BFGS,
gas phase, all pairs; the reference in float64). For every frame, before and after each relaxation: residues
with helical φ/ψ, backbone H-bonds i→i+4 (α-helix) and i→i+3 (3₁₀-helix) with H···O < 2.5 Å, and the end-to-end distance (Å);
and each model's relaxed energy relative to the first frame's relaxed energy under the same model (eV). A
model that ranks a 3₁₀-like form below the α-helix when the reference does not will fold into it. The two
relaxations may end in different minima (one model's α-helix tighter than the other's), so the reference's
energies at the model's minima are reported too: the same geometries under both models.

OUT.start.extxyz keeps the frames as read, OUT.model_minima.extxyz the model's relaxed frames.
--reuse-reference EARLIER.json takes the reference's relaxations from an earlier report on the same frames (its
EARLIER.start.extxyz must hold exactly these positions), so a new model costs one set of relaxations.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("frames", nargs="+", metavar="LABEL=FILE")
    parser.add_argument("--model", default="default")
    parser.add_argument("--reference", required=True, help="e.g. so3lr:DIR (float64, all pairs)")
    parser.add_argument("--fmax", type=float, default=0.01, help="eV/Å (default 0.01)")
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--reuse-reference", type=Path, metavar="EARLIER.json",
                        help="take the reference's results from this earlier report on the same frames")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import ase
    import ase.io

    from so3k_driver.evaluation.minimise import minimise
    from so3k_driver.evaluation.optimizers import LbfgsSettings
    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.sampling import peptide

    labels, positions, numbers, starts = [], [], None, []
    for entry in args.frames:
        label, _, path = entry.partition("=")
        path, _, index = path.partition("@")
        atoms = ase.io.read(path, index=int(index) if index else -1)
        numbers = atoms.numbers if numbers is None else numbers
        if not np.array_equal(atoms.numbers, numbers):
            raise SystemExit(f"{path}: other atoms than the first file's")
        labels.append(label)
        positions.append(atoms.positions)
        starts.append(ase.Atoms(numbers=atoms.numbers, positions=atoms.positions, info={"label": label, "source": path}))
    ase.io.write(args.out.with_suffix(".start.extxyz"), starts)  # the frames as read: a running study moves on
    positions = np.array(positions)
    backbone = peptide.find_backbone(numbers, positions[0])
    settings = LbfgsSettings(fmax=args.fmax, max_steps=args.max_steps)
    report = {"units": {"energy": "eV, relaxed, relative to the first frame under the same model",
                        "end_to_end": "Å", "hbond": f"H···O < {peptide.HELIX_HBOND_CUTOFF_A} Å"},
              "model": args.model, "reference": args.reference, "fmax_eV_per_A": args.fmax, "frames": {}}
    for label, start in zip(labels, positions):
        report["frames"][label] = {"start": peptide.helix_shape(start, backbone)}
    roles = [("model", args.model, None), ("reference", args.reference, "float64")]
    if args.reuse_reference:
        earlier = json.loads(args.reuse_reference.read_text())
        earlier_starts = [a.positions for a in ase.io.read(args.reuse_reference.with_suffix(".start.extxyz"), index=":")]
        if (earlier["reference"] != args.reference or earlier["fmax_eV_per_A"] != args.fmax
                or list(earlier["frames"]) != labels or not np.array_equal(np.array(earlier_starts), positions)):
            raise SystemExit(f"{args.reuse_reference}: another reference, fmax, labels or start positions than this run's")
        for label in labels:
            report["frames"][label]["reference"] = earlier["frames"][label]["reference"]
        roles.pop()
    model_minima, potentials = None, {}
    for role, spec, dtype in roles:
        potential = potentials[role] = Potential.load(spec, dtype=dtype, lr_cutoff=None)
        result = minimise(potential, numbers, positions, settings)
        if role == "model":
            model_minima = result.positions
        for k, label in enumerate(labels):
            report["frames"][label][role] = {
                "relative_energy_eV": round(float(result.energy[k] - result.energy[0]), 4),
                "converged": bool(result.converged[k]), "steps": int(result.steps[k]),
                **peptide.helix_shape(result.positions[k], backbone)}
        print(f"{role} {spec}: {result.wall_time_s:.0f} s", flush=True)
    reference = potentials.get("reference") or Potential.load(args.reference, dtype="float64", lr_cutoff=None)
    at_model_minima = reference.evaluate(numbers, model_minima).energy
    for k, label in enumerate(labels):
        report["frames"][label]["reference_at_model_minimum"] = {
            "relative_energy_eV": round(float(at_model_minima[k] - at_model_minima[0]), 4)}
    ase.io.write(args.out.with_suffix(".model_minima.extxyz"),
                 [ase.Atoms(numbers=numbers, positions=x, info={"label": label}) for label, x in zip(labels, model_minima)])
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{'frame':<22} {'start (helical, i+4, i+3, Å)':<30} {'model: dE eV, i+4, i+3, Å':<30} reference"
          f"{'':<26}reference at the model's minima")
    for label, row in report["frames"].items():
        s, m, r = row["start"], row["model"], row["reference"]
        print(f"{label:<22} {s['helical_residues']:>2} {s['alpha_hbonds']:>2} {s['three_ten_hbonds']:>2} {s['end_to_end_A']:5.1f}"
              f"{'':<13} {m['relative_energy_eV']:+7.3f} {m['alpha_hbonds']:>2} {m['three_ten_hbonds']:>2} {m['end_to_end_A']:5.1f}"
              f"{'' if m['converged'] else '*':<8} {r['relative_energy_eV']:+7.3f} {r['alpha_hbonds']:>2} "
              f"{r['three_ten_hbonds']:>2} {r['end_to_end_A']:5.1f}{'' if r['converged'] else '*':<8} "
              f"{row['reference_at_model_minimum']['relative_energy_eV']:+7.3f}")


if __name__ == "__main__":
    main()
