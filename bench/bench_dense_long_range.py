"""SO3LR's long-range terms over dense per-structure arrays against a pair list, per model call.

    python bench/bench_dense_long_range.py [--rounds 12] [--cases NAME ...] [--out FILE.json]

For every case one process builds the model twice, once with ``dense_long_range=True`` and once with
the pair list (``False``), gas phase with all pairs, and times energy + forces calls of both alternately
on the same perturbed structures. Printed: the median per layout, their ratio (dense / list; < 1: dense
is faster) and the largest energy and force differences between the two.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "so3k_driver" / "data"
SO3LR = REPO.parent / "shared" / "reference" / "so3lr"

# name: (model spec, dtype, structure file, batch size, copies of the structure side by side)
CASES = {
    "student 8x42": ("default", "float32", "Ac-Ala3-NHMe_ext.xyz", 8, 1),
    "student 8x162 helix": ("default", "float32", "Ac-Ala15-NHMe_folded.xyz", 8, 1),
    "student 8x162 extended": ("default", "float32", "Ac-Ala15-NHMe_ext.xyz", 8, 1),
    "student 1x648": ("default", "float32", "Ac-Ala15-NHMe_folded.xyz", 1, 4),
    "so3lr 1x42": (f"so3lr:{SO3LR}", "float32", "Ac-Ala3-NHMe_ext.xyz", 1, 1),
    "so3lr 5x42": (f"so3lr:{SO3LR}", "float32", "Ac-Ala3-NHMe_ext.xyz", 5, 1),
    "so3lr 1x162": (f"so3lr:{SO3LR}", "float32", "Ac-Ala15-NHMe_folded.xyz", 1, 1),
    "so3lr 1x42 float64": (f"so3lr:{SO3LR}", "float64", "Ac-Ala3-NHMe_ext.xyz", 1, 1),
}


def structures(structure: str, batch: int, copies: int):
    import ase.io
    import numpy as np

    atoms = ase.io.read(DATA / structure)
    numbers, positions = atoms.numbers, atoms.positions
    for k in range(1, copies):  # side by side, 25 Å apart
        numbers = np.concatenate([numbers, atoms.numbers])
        positions = np.concatenate([positions, atoms.positions + [0.0, 25.0 * k, 0.0]])
    noise = 0.03 * np.random.default_rng(0).normal(size=(batch, len(numbers), 3))
    return np.tile(numbers, (batch, 1)), positions[None] + noise


def interleaved(case, rounds: int) -> dict:
    import numpy as np

    from so3k_driver.evaluation.potential import Potential

    spec, dtype, structure, batch, copies = case
    numbers, positions = structures(structure, batch, copies)
    potentials = {label: Potential.load(spec, dtype=dtype, lr_cutoff=None, dense_long_range=dense)
                  for label, dense in (("dense", True), ("list", False))}
    results = {}
    for label, potential in potentials.items():
        for _ in range(2):
            results[label] = potential.evaluate(numbers, positions)
    times = {label: [] for label in potentials}
    for index in range(rounds):
        for label in (list(potentials) if index % 2 == 0 else list(potentials)[::-1]):
            start = time.perf_counter()
            potentials[label].evaluate(numbers, positions)
            times[label].append(time.perf_counter() - start)
    result = {label: {"median_ms": 1e3 * statistics.median(t), "min_ms": 1e3 * min(t)} for label, t in times.items()}
    result["energy_difference_eV"] = float(np.max(np.abs(results["dense"].energy - results["list"].energy)))
    result["force_difference_eV_per_A"] = float(np.max(np.abs(results["dense"].forces - results["list"].forces)))
    result["atoms"] = int(numbers.shape[1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12, help="timed calls per layout and case")
    parser.add_argument("--cases", nargs="*", choices=sorted(CASES), help="only these cases (default: all)")
    parser.add_argument("--out", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args()
    chosen = {name: CASES[name] for name in (args.cases or CASES)
              if CASES[name][0] == "default" or SO3LR.exists()}
    results = {}
    print(f"{'case':<24} {'dense':>9} {'list':>9} {'ratio':>6}  (median ms per call)")
    for name, case in chosen.items():
        result = results[name] = interleaved(case, args.rounds)
        dense, listed = result["dense"]["median_ms"], result["list"]["median_ms"]
        print(f"{name:<24} {dense:9.1f} {listed:9.1f} {dense / listed:6.2f}  |dE| {result['energy_difference_eV']:.1e} eV"
              f"  |dF| {result['force_difference_eV_per_A']:.1e} eV/Å", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"cases": results, "rounds": args.rounds, "load_average": os.getloadavg()},
                                       indent=1))


if __name__ == "__main__":
    main()
