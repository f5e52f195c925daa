"""Where a SO3LR-type student's energy error comes from, frame by frame: its electrostatics, its dispersion,
or the rest (the local network and ZBL), on SO3LR-labelled peptide frames (issue #11).

    python bench/energy_error_terms.py STUDENT FRAMES.extxyz[.xz] [FRAMES ...] --out terms.json

SO3LR's labels carry its partial charges and Hirshfeld ratios. The student predicts both. The two
long-range energies are evaluated twice with the same formulas, gas phase, all pairs (as studies run):
once with the student's charges / ratios and once with SO3LR's. Their differences are the parts of the
energy error (student - SO3LR, eV) that come from each term; the rest is the local part. The table gives
the mean of each part per quarter of the frames sorted by end-to-end distance, mean removed (as
``so3k analyze --reference`` does), so it shows which term tilts compact against extended chains.
Student in float64, all pairs. ``so3k analyze RUN --reference so3lr:DIR`` makes the same split on a study's
own frames, with the reference's charges evaluated rather than read from labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def read_frames(path: str) -> list:
    from so3k_driver.evaluation.frames import ase_read

    frames = ase_read(path, ":")  # .xz decompressed once (evaluation/frames.py)
    for index, atoms in enumerate(frames):
        for key in ("partial_charges", "hirshfeld_ratios"):
            if key not in atoms.arrays:
                raise SystemExit(f"{path}: frame {index + 1} has no {key} (label it with SO3LR)")
    return frames


def long_range_energies(config, numbers, positions, charges, ratios) -> tuple[float, float]:
    """(electrostatic, dispersion) energy in eV of one structure over all pairs, SO3LR's formulas."""
    from so3k_driver.model import so3lr

    electrostatic, dispersion = so3lr.gas_phase_long_range_energies(config, numbers, positions, charges, ratios,
                                                                    None, 0.0)
    return float(electrostatic), float(dispersion)


def quarter_table(profiles: dict[str, dict]) -> list[dict]:
    """One row per quarter of the frames by end-to-end distance: each part's mean error (eV, mean removed),
    from that part's energy_error_profile record (the quarters ``so3k analyze --reference`` reports)."""
    first = next(iter(profiles.values()))["quarters"]
    return [{"end_to_end_A": q["end_to_end_A"], "frames": q["frames"], "mean_helix_fraction": q["mean_helix_fraction"],
             **{name: record["quarters"][k]["mean_error_eV"] for name, record in profiles.items()}}
            for k, q in enumerate(first)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("student", help="model spec of a SO3LR-type student (FILE.so3k, default, ...)")
    parser.add_argument("frames", nargs="+", help="SO3LR-labelled extxyz files (energy, forces, partial_charges, "
                                                   "hirshfeld_ratios)")
    parser.add_argument("--out", required=True, help="JSON file")
    args = parser.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)  # a script, not the package: float64 for the reference sums
    from so3k_driver.evaluation.frames import evaluate_frames
    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.sampling import peptide
    from so3k_driver.sampling.analysis import energy_error_profile

    potential = Potential.load(args.student, dtype="float64", lr_cutoff=None)
    config = potential.config
    if not (config.electrostatics and config.dispersion):
        raise SystemExit(f"{args.student}: not a SO3LR-type model (needs electrostatics and dispersion)")
    results = {"student": args.student, "sets": {}}
    for path in args.frames:
        frames = read_frames(path)
        parts = {name: np.zeros(len(frames)) for name in ("total", "electrostatics", "dispersion")}
        charge_errors = []
        for chunk, result in evaluate_frames(potential, frames, 16, f"student on {Path(path).name}"):
            for slot, i in enumerate(chunk):
                atoms = frames[i]
                ours = long_range_energies(config, atoms.numbers, atoms.positions, result.extras["charges"][slot],
                                           result.extras["hirshfeld_ratios"][slot])
                theirs = long_range_energies(config, atoms.numbers, atoms.positions, atoms.arrays["partial_charges"],
                                             atoms.arrays["hirshfeld_ratios"])
                parts["total"][i] = result.energy[slot] - atoms.get_potential_energy()
                parts["electrostatics"][i] = ours[0] - theirs[0]
                parts["dispersion"][i] = ours[1] - theirs[1]
                charge_errors.append(result.extras["charges"][slot] - atoms.arrays["partial_charges"])
        parts["local"] = parts["total"] - parts["electrostatics"] - parts["dispersion"]
        backbone = peptide.find_backbone(frames[0].numbers, frames[0].positions)
        positions = np.stack([atoms.positions for atoms in frames])
        e2e = peptide.distance(positions, *backbone.end_to_end_atoms())
        helix = peptide.helical_mask(positions, backbone).mean(axis=1)
        profiles = {name: energy_error_profile.profile(e2e, helix, values, np.zeros_like(values))
                    for name, values in parts.items()}
        rows = quarter_table(profiles)
        spread = {name: record["error_rms_eV"] for name, record in profiles.items()}
        charge_rmse = float(np.sqrt(np.mean(np.concatenate(charge_errors) ** 2)))
        results["sets"][path] = {"frames": len(frames), "quarters": rows, "per_frame_rms_eV": spread,
                                 "charge_rmse_e": charge_rmse,
                                 "correlation_with_total": {name: float(np.corrcoef(values, parts["total"])[0, 1])
                                                            for name, values in parts.items() if name != "total"}}
        print(f"\n== {path}: {len(frames)} frames; energy error parts (student - SO3LR, eV, mean removed)")
        print("| end-to-end (Å) | total | electrostatics | dispersion | local |")
        print("|---|---|---|---|---|")
        for row in rows:
            lo, hi = row["end_to_end_A"]
            print(f"| {lo:.1f}–{hi:.1f} | {row['total']:+.3f} | {row['electrostatics']:+.3f} | "
                  f"{row['dispersion']:+.3f} | {row['local']:+.3f} |")
        print(f"partial charges: RMSE {1e3 * charge_rmse:.1f} me against SO3LR's")
        print("per-frame RMS: " + ", ".join(f"{k} {v:.3f}" for k, v in spread.items()))
        print("correlation with the total: " + ", ".join(
            f"{k} {v:+.2f}" for k, v in results["sets"][path]["correlation_with_total"].items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
