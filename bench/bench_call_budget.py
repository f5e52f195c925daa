"""CPU call sizing and host memory: one batch of perturbed copies, models with given pair budgets, timed in
interleaved rounds in this process, with each call's scratch (XLA's temp buffer) and the minor page faults.

    python bench/bench_call_budget.py --structure Ac-Ala15-NHMe_ext default:auto so3lr:DIR:4096 so3lr:DIR:auto
    python bench/bench_call_budget.py --no-keep ...        # glibc's own malloc thresholds (host_memory.py off)

MODEL:BUDGET = a model spec and the float32 pairs per call ('auto': the package's choice,
potential.cpu_pairs_per_call). Whether freed scratch is kept is process-wide, so compare --no-keep
in a second run. Writes --out JSON: per model the calls per batch, scratch MiB per call, and ms per batch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_student import DATA, interleaved_times  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", metavar="MODEL:BUDGET")
    parser.add_argument("--structure", default="Ac-Ala15-NHMe_ext", help="a structure file name in so3k_driver/data, without .xyz")
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--no-keep", action="store_true", help="leave glibc's malloc thresholds alone")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import ase.io

    from so3k_driver.evaluation.host_memory import ENVIRONMENT, keep_large_buffers
    from so3k_driver.evaluation.potential import Potential

    if args.no_keep:
        os.environ[ENVIRONMENT] = "0"  # a CPU Potential would otherwise keep them when it is built
    kept = keep_large_buffers()
    atoms = ase.io.read(DATA / f"{args.structure}.xyz")
    positions = atoms.positions + np.random.default_rng(0).normal(scale=0.02, size=(args.copies, len(atoms), 3))
    models = {}
    for spec in args.models:
        path, budget = spec.rsplit(":", 1)
        options = {} if budget == "auto" else {"pairs_per_call": int(budget)}
        models[spec] = Potential.load(path, dtype="float32", lr_cutoff=None, **options)
    costs = {name: potential.compiled_cost(atoms.numbers, positions) for name, potential in models.items()}
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = interleaved_times(models, atoms.numbers, positions, args.rounds, args.calls)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / (args.rounds * args.calls * len(models))
    print(f"\n{args.copies} x {args.structure} ({len(atoms)} atoms), float32, all pairs; freed scratch kept: {kept}; "
          f"minor page faults per batch, all models: {faults:.0f}")
    print(f"{'model:budget':<48} {'calls':>5} {'scratch MiB/call':>16} {'median ms':>9} {'q1':>7} {'q3':>7} {'min':>7}")
    for name, t in times.items():
        cost = costs[name]
        print(f"{name[-48:]:<48} {cost['calls']:5d} {cost['temp_bytes'] / 2**20:16.1f} {t['median_ms']:9.1f} "
              f"{t['q1_ms']:7.1f} {t['q3_ms']:7.1f} {t['min_ms']:7.1f}")
    if args.out:
        args.out.write_text(json.dumps({"structure": args.structure, "copies": args.copies, "scratch_kept": kept,
                                        "minor_faults_per_batch": faults, "compiled": costs, "times": times,
                                        "units": {"times": "ms per batch", "temp_bytes": "bytes per call"}},
                                       indent=1) + "\n")


if __name__ == "__main__":
    main()
