"""Pair capacity per call position against one capacity shared by every call of a batch.

An MD batch of B replicas (or walkers) whose pair counts differ is evaluated in several calls on a CPU.
Since 2026-12-04 each call position keeps its own pair capacity (``Batcher``: position k is replica k);
before, every call was padded to the largest replica's pairs. This times both in one process,
interleaved, on the last frame of each trajectory given (the state a long study is in), with small
perturbations so each round sees new positions:

    python bench/bench_pair_capacity.py default 'runs/ala15_walkers_v10/W-*_sim.pos_0.xyz'
    python bench/bench_pair_capacity.py so3lr-student-v6 'runs/ala15_ab_v6/T-*_sim.pos_0.xyz' --json out.json

Prints each side's capacities and its median ms per batch (float32, all pairs), and their ratio.
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("trajectories", help="glob of i-PI trajectories (quoted); the last frame of each is used")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import ase.io

    from so3k_driver.evaluation.potential import Potential

    files = sorted(glob.glob(args.trajectories))
    if not files:
        raise SystemExit(f"no file matches {args.trajectories!r}")
    frames = [ase.io.read(f, index=-1) for f in files]
    numbers = frames[0].numbers
    start = np.stack([f.positions for f in frames])
    per_position = Potential.load(args.model, dtype="float32", lr_cutoff=None)
    shared = Potential.load(args.model, dtype="float32", lr_cutoff=None)
    keeper = shared._batcher.capacities
    own_capacity = keeper.capacity
    keeper.capacity = lambda key, count: own_capacity(key[:2], count)  # drop the call position: as before
    rng = np.random.default_rng(0)
    sides = {"shared": shared, "per_position": per_position}
    for potential in sides.values():
        for _ in range(3):
            potential.evaluate(numbers, start + rng.normal(scale=0.02, size=start.shape))
    capacities = {"shared": sorted(set(keeper._capacity.values())),
                  "per_position": [per_position.pair_capacity(1, len(numbers), k) for k in range(len(files))]}
    times = {name: [] for name in sides}
    for r in range(args.rounds):
        positions = start + rng.normal(scale=0.02, size=start.shape)
        for name in (list(sides) if r % 2 else list(sides)[::-1]):
            t0 = time.perf_counter()
            sides[name].evaluate(numbers, positions)
            times[name].append(1000 * (time.perf_counter() - t0))
    difference = np.abs(shared.evaluate(numbers, start).energy - per_position.evaluate(numbers, start).energy).max()
    record = {"model": args.model, "structures": len(files), "atoms": len(numbers), "rounds": args.rounds,
              "calls": per_position.compiled_cost(numbers, start)["calls"], "capacities": capacities,
              "median_ms": {k: float(np.median(v)) for k, v in times.items()},
              "quartiles_ms": {k: [float(q) for q in np.percentile(v, [25, 75])] for k, v in times.items()},
              "max_energy_difference_eV": float(difference)}
    record["shared_over_per_position"] = record["median_ms"]["shared"] / record["median_ms"]["per_position"]
    print(f"{len(files)} x {len(numbers)} atoms, {args.model}, float32, all pairs, {record['calls']} calls per batch")
    for name in sides:
        print(f"  {name:<13} capacities {capacities[name]}  median {record['median_ms'][name]:.1f} ms "
              f"(quartiles {record['quartiles_ms'][name][0]:.1f}-{record['quartiles_ms'][name][1]:.1f})")
    print(f"  shared / per position: {record['shared_over_per_position']:.3f}; energies differ by at most {difference:.1e} eV")
    if args.json:
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
