"""FIRE against L-BFGS (and L-BFGS at several structures per call) in ``so3k minima``'s minimiser.

Every variant minimises the same frames; the frames are cut into blocks and the variants take turns
on each block (block 1: A B C ..., block 2: A B C ...), so a background load that comes and goes
hits every variant alike. Per variant: frames per minute (median and range over blocks), steps per
frame, ms per structure evaluation (wall time / structure-slot evaluations, padding included) and
the distinct minima of all frames (the dedup of ``so3k minima``). Energies are compared frame by
frame with the first variant (frames both converged).

    python docs/results/ala3_minima/bench_optimizers.py --model default --frames FRAMES.xyz [--every K] \
        --variants lbfgs-none:8 lbfgs-lindh:8 fire:8 --blocks 4 [--fmax 0.05] --json out.json

Units: eV, eV/Å, Å, s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np


def variant_settings(text: str, fmax: float):
    from so3k_driver.evaluation.optimizers import optimizer_settings

    name, structures, *skin = text.split(":")
    extra = {"skin": float(skin[0])} if skin else {}
    if "-" in name:  # lbfgs-none, lbfgs-lindh: L-BFGS with that preconditioner
        name, extra["preconditioner"] = name.split("-")
    return optimizer_settings(name, fmax=fmax, structures_per_call=int(structures), **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--frames", required=True, nargs="+", help="trajectory files (any format ASE reads)")
    parser.add_argument("--variants", nargs="+", default=["fire:4", "lbfgs:4"],
                        help="OPTIMIZER[-PRECONDITIONER]:STRUCTURES_PER_CALL[:SKIN_A], e.g. lbfgs-none:8")
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/Å")
    parser.add_argument("--every", type=int, default=1, help="take every k-th frame of the file")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    from so3k_driver.evaluation.minimise import minimise
    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.sampling.minima import DuplicateTolerances, backbone_torsions, distinct_minima, read_frames

    frames = read_frames(args.frames)[:: args.every]
    numbers = frames[0].numbers
    positions = np.array([a.positions for a in frames])
    potential = Potential.load(args.model)
    settings = {v: variant_settings(v, args.fmax) for v in args.variants}
    for s in settings.values():  # compile outside the timing
        minimise(potential, numbers, positions[: s.structures_per_call], dataclasses.replace(s, max_steps=2))

    blocks = np.array_split(np.arange(len(frames)), args.blocks)
    runs = {v: [] for v in args.variants}
    energy = {v: np.full(len(frames), np.nan) for v in args.variants}
    steps = {v: np.zeros(len(frames), int) for v in args.variants}
    final = {v: np.zeros_like(positions) for v in args.variants}
    converged = {v: np.zeros(len(frames), bool) for v in args.variants}
    broken = {v: np.zeros(len(frames), bool) for v in args.variants}
    for number, block in enumerate(blocks):
        for v in args.variants:
            result = minimise(potential, numbers, positions[block], settings[v])
            energy[v][block], steps[v][block] = result.energy, result.steps
            final[v][block], converged[v][block] = result.positions, result.converged
            broken[v][block] = result.broken
            runs[v].append({"block": number, "frames": len(block), "wall_s": result.wall_time_s,
                            "frames_per_min": 60.0 * len(block) / result.wall_time_s,
                            "ms_per_structure_evaluation": 1000.0 * result.wall_time_s / result.force_evaluations,
                            "jitted_calls": result.calls, "load_average_1min": os.getloadavg()[0]})
            print(f"block {number} {v}: {runs[v][-1]['frames_per_min']:.1f} frames/min, "
                  f"{result.steps.mean():.1f} steps/frame, {runs[v][-1]['ms_per_structure_evaluation']:.1f} ms/eval, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)

    reference = args.variants[0]
    summary = {"model": potential.description, "frames": len(frames), "fmax_eV_per_A": args.fmax,
               "blocks": args.blocks, "cpu_count": os.cpu_count(), "time": time.strftime("%Y-%m-%d %H:%M"),
               "variants": {}}
    for v in args.variants:
        rates = np.array([r["frames_per_min"] for r in runs[v]])
        ms = np.array([r["ms_per_structure_evaluation"] for r in runs[v]])
        ratio = np.array([r["wall_s"] / q["wall_s"] for r, q in zip(runs[reference], runs[v])])
        kept = np.flatnonzero(converged[v])
        _, torsions = backbone_torsions(numbers, final[v][kept])
        groups = distinct_minima(energy[v][kept], torsions, True, DuplicateTolerances())
        both = converged[v] & converged[reference]  # a broken frame's energy is the model's hole, not a minimum
        difference = (energy[v] - energy[reference])[both]
        summary["variants"][v] = {
            "settings": dataclasses.asdict(settings[v]),
            "frames_per_min_median": float(np.median(rates)), "frames_per_min_range": [rates.min(), rates.max()],
            "total_frames_per_min": 60.0 * len(frames) / sum(r["wall_s"] for r in runs[v]),
            "speed_vs_first_per_block": ratio.round(3).tolist(),
            "ms_per_structure_evaluation_median": float(np.median(ms)),
            "ms_per_structure_evaluation_range": [ms.min(), ms.max()],
            "steps_mean": float(steps[v].mean()), "steps_median": float(np.median(steps[v])),
            "steps_max": int(steps[v].max()), "converged": int(converged[v].sum()), "broken": int(broken[v].sum()),
            "distinct_minima": len(groups), "lowest_energy_eV": float(energy[v][kept].min()),
            "energy_minus_first_median_eV": float(np.median(difference)),
            "frames_lower_than_first": int(np.sum(difference < -1e-3)),
            "frames_higher_than_first": int(np.sum(difference > 1e-3)),
            "runs": runs[v],
        }
        line = summary["variants"][v]
        print(f"{v}: {line['frames_per_min_median']:.1f} frames/min (blocks {rates.min():.1f}-{rates.max():.1f}; "
              f"speed vs {reference} {np.median(ratio):.2f}x, {ratio.min():.2f}-{ratio.max():.2f}), "
              f"{line['steps_mean']:.1f} steps/frame (max {line['steps_max']}), "
              f"{line['ms_per_structure_evaluation_median']:.1f} ms/eval, {line['converged']} converged, "
              f"{line['broken']} broken, "
              f"{line['distinct_minima']} distinct minima, E - E({reference}) median "
              f"{line['energy_minus_first_median_eV'] * 1000:.1f} meV", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(summary, handle, indent=1, default=float)
            handle.write("\n")


if __name__ == "__main__":
    main()
