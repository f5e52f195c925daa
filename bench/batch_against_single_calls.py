"""One Potential.evaluate of S same-size structures against S single evaluates, interleaved rounds (issue #12).

    python bench/batch_against_single_calls.py MODEL FRAMES.extxyz [--dtype float32] [--rounds 6] [--lr-cutoff 0]

Reads every frame of FRAMES (same atoms in each), compiles both shapes first, then times R rounds of one
batched call and of S single calls on the same positions (each round displaced by 1e-3 Å noise, so nothing is
cached), and prints the medians (ms) and their ratio. Host work (pair lists, checks, packing) is included, as
a user waits for it. SO3LR-type models get their long-range terms over all pairs (--lr-cutoff 0, as a gas-phase
study runs them) unless told a cutoff in Å. Compare with the model time an MD run reports
(``so3k_driver_calls.json``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ase.io import read

from so3k_driver.evaluation.potential import Potential


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("frames")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--lr-cutoff", type=float, default=0.0, help="Å; 0 = all pairs (default)")
    args = parser.parse_args()
    frames = read(args.frames, ":")
    numbers = frames[0].numbers
    positions = np.stack([atoms.positions for atoms in frames])
    batch_numbers = np.broadcast_to(numbers, positions.shape[:-1])
    potential = Potential.load(args.model, dtype=args.dtype, lr_cutoff=args.lr_cutoff or None)
    potential.evaluate(batch_numbers, positions)
    potential.evaluate(numbers, positions[0])
    rng = np.random.default_rng(0)
    batched, singles = [], []
    for _ in range(args.rounds):
        moved = positions + 1e-3 * rng.normal(size=positions.shape)
        start = time.perf_counter()
        potential.evaluate(batch_numbers, moved)
        batched.append(time.perf_counter() - start)
        start = time.perf_counter()
        for structure in moved:
            potential.evaluate(numbers, structure)
        singles.append(time.perf_counter() - start)
    count, atoms = positions.shape[:2]
    reach = f"long-range cutoff {args.lr_cutoff:g} Å" if args.lr_cutoff else "long range over all pairs"
    print(f"{args.model} ({args.dtype}, {reach}), {count} × {atoms} atoms, {args.rounds} rounds")
    print(f"  one call of {count}:  median {1e3 * np.median(batched):.1f} ms  ({np.round(1e3 * np.array(batched))})")
    print(f"  {count} single calls: median {1e3 * np.median(singles):.1f} ms  ({np.round(1e3 * np.array(singles))})")
    print(f"  batched / singles {np.median(batched) / np.median(singles):.2f}")


if __name__ == "__main__":
    main()
