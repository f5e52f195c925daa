"""A student's errors against SO3LR by the shape of the chain: helix, globule, extended (issue #11).

    python bench/errors_by_shape.py FRAMES.extxyz[.xz] MODEL [MODEL ...] --out errors_by_shape.json

FRAMES are SO3LR-labelled Ac-Ala15-NHMe frames whose ``shape`` info names their group (helix: >= 9 of 15
residues with helical phi/psi; globule: <= 3 and end-to-end < 32 Å; extended: <= 3 and > 42 Å), as
``runs/so3lr_study_frames`` picks them from the SO3LR folding study. For each model, float64, gas phase, all
pairs: the force MAE per group (meV/Å), and the mean energy error per group with the mean over all frames
removed (eV), split into electrostatics, dispersion and the rest as ``bench/energy_error_terms.py`` does,
and the spread (RMS) of the per-frame energy error within each group (eV). Groups beyond the three (any
other ``shape``, e.g. frames of another study) follow in alphabetical order. The
difference of two groups' mean errors is how far the model moves that free-energy difference: a helix row of
-0.2 eV means the model puts helices 0.2 eV lower, against the other shapes, than SO3LR does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from energy_error_terms import long_range_energies, read_frames  # noqa: E402

PARTS = ("total", "electrostatics", "dispersion", "local")


def model_errors(spec: str, frames: list) -> dict:
    """Per-frame energy error parts (eV) and per-frame force MAE (eV/Å) of one model against the labels."""
    from so3k_driver.evaluation.frames import evaluate_frames
    from so3k_driver.evaluation.potential import Potential

    potential = Potential.load(spec, dtype="float64", lr_cutoff=None)
    config = potential.config
    split = bool(config.electrostatics and config.dispersion)
    parts = {name: np.zeros(len(frames)) for name in PARTS}
    force_mae = np.zeros(len(frames))
    for chunk, result in evaluate_frames(potential, frames, 16, f"{spec}"):
        for slot, i in enumerate(chunk):
            atoms = frames[i]
            parts["total"][i] = result.energy[slot] - atoms.get_potential_energy()
            n = len(atoms)
            force_mae[i] = np.abs(result.forces[slot][:n] - atoms.get_forces()).mean()
            if split:
                ours = long_range_energies(config, atoms.numbers, atoms.positions, result.extras["charges"][slot],
                                           result.extras["hirshfeld_ratios"][slot])
                theirs = long_range_energies(config, atoms.numbers, atoms.positions,
                                             atoms.arrays["partial_charges"], atoms.arrays["hirshfeld_ratios"])
                parts["electrostatics"][i] = ours[0] - theirs[0]
                parts["dispersion"][i] = ours[1] - theirs[1]
    parts["local"] = parts["total"] - parts["electrostatics"] - parts["dispersion"]
    return {"parts": parts, "force_mae": force_mae, "split": split}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("frames", help="SO3LR-labelled extxyz with a 'shape' info per frame")
    parser.add_argument("models", nargs="+", help="model specs (FILE.so3k, default, ...)")
    parser.add_argument("--out", required=True, help="JSON file")
    args = parser.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)  # a script, not the package: float64 for the reference sums
    frames = read_frames(args.frames)
    shapes = np.array([atoms.info.get("shape", "") for atoms in frames])
    if (shapes == "").any():
        raise SystemExit(f"{args.frames}: frame {int(np.argmax(shapes == '')) + 1} has no 'shape' info")
    known = ["helix", "globule", "extended"]  # then any other group, alphabetically
    groups = sorted(set(shapes), key=lambda g: (known.index(g) if g in known else len(known), g))
    results = {"frames": args.frames, "counts": {g: int((shapes == g).sum()) for g in groups}, "models": {}}
    for spec in args.models:
        errors = model_errors(spec, frames)
        record = {"force_mae_meV_per_A": {}, "mean_energy_error_eV": {}, "energy_error_spread_eV": {}}
        for g in groups:
            mask = shapes == g
            record["force_mae_meV_per_A"][g] = float(1e3 * errors["force_mae"][mask].mean())
            record["mean_energy_error_eV"][g] = {
                name: float(values[mask].mean() - values.mean()) for name, values in errors["parts"].items()
                if errors["split"] or name == "total"}
            record["energy_error_spread_eV"][g] = float(np.std(errors["parts"]["total"][mask]))
        record["force_mae_meV_per_A"]["all"] = float(1e3 * errors["force_mae"].mean())
        record["energy_error_rms_eV"] = float(np.std(errors["parts"]["total"]))
        results["models"][spec] = record
        print(f"\n== {spec} on {len(frames)} SO3LR frames ({', '.join(f'{g} {(shapes == g).sum()}' for g in groups)})")
        print("| shape | force MAE (meV/Å) | energy error (eV, mean removed) | electrostatics | dispersion | local "
              "| spread in the group (eV, RMS) |")
        print("|---|---|---|---|---|---|---|")
        for g in groups:
            e = record["mean_energy_error_eV"][g]
            rest = " | ".join(f"{e[name]:+.3f}" if name in e else "–" for name in PARTS[1:])
            print(f"| {g} | {record['force_mae_meV_per_A'][g]:.1f} | {e['total']:+.3f} | {rest} "
                  f"| {record['energy_error_spread_eV'][g]:.3f} |")
        print(f"all frames: force MAE {record['force_mae_meV_per_A']['all']:.1f} meV/Å, "
              f"per-frame energy error RMS {record['energy_error_rms_eV']:.3f} eV")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
