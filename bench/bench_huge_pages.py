"""A model call whose scratch is beyond a thread heap's 64 MiB, with and without glibc's huge pages.

    python bench/bench_huge_pages.py STRUCTURE --model so3lr:DIR [--scale 0.93] [--rounds 2] [--calls 6]

One structure (the last frame of STRUCTURE, optionally shrunk about its centre by --scale so that more pairs
fall inside the cutoff and the scratch grows), float32, all pairs, evaluated from a worker thread, as
inside i-PI. Each round starts two fresh processes, one with the environment a study gives its i-PI
(``host_memory.child_environment``: GLIBC_TUNABLES=glibc.malloc.hugetlb=1) and one without (glibc's
thresholds raised by mallopt only, as before 2026-12-06), and prints XLA's scratch (MiB), minor page faults
and ms per call. Ratios are measured in one run; the cores may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, threading, time
import ase.io
import numpy as np
from so3k_driver.evaluation.potential import Potential

path, model, scale, calls = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
atoms = ase.io.read(path, index=-1)
centre = atoms.positions.mean(axis=0)
positions = (centre + scale * (atoms.positions - centre))[None]
potential = Potential.load(model, dtype="float32", lr_cutoff=None)
numbers = atoms.numbers[None]
scratch = potential.compiled_cost(numbers, positions)["temp_bytes"]
report = {}

def work():
    potential.evaluate(numbers, positions)
    faults, times = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, []
    for _ in range(calls):
        start = time.perf_counter()
        potential.evaluate(numbers, positions)
        times.append(time.perf_counter() - start)
    report.update(faults=(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / calls, times=times)

thread = threading.Thread(target=work)
thread.start()
thread.join()
print(json.dumps({"scratch_MiB": scratch / 2**20, **report}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("structure")
    parser.add_argument("--model", required=True)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the structure about its centre (1 = as is)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    from so3k_driver.evaluation.host_memory import child_environment

    plain = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    plain.pop("SO3K_HOST_MEMORY", None)
    environments = {"thresholds only (before)": plain, "huge pages (study default)": child_environment(plain)}
    results = {name: [] for name in environments}
    for round_ in range(args.rounds):
        for name, environment in environments.items():
            out = subprocess.run([sys.executable, "-c", CHILD, args.structure, args.model, str(args.scale),
                                  str(args.calls)], capture_output=True, text=True, env=environment, check=True)
            results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            last = results[name][-1]
            print(f"round {round_ + 1} {name}: scratch {last['scratch_MiB']:.1f} MiB, {last['faults']:.0f} faults and "
                  f"{1e3 * statistics.median(last['times']):.1f} ms per call (median of {args.calls})", flush=True)
    summary = {name: {"scratch_MiB": round(runs[0]["scratch_MiB"], 1),
                      "faults_per_call": [round(r["faults"]) for r in runs],
                      "ms_per_call_median": [round(1e3 * statistics.median(r["times"]), 1) for r in runs]}
               for name, runs in results.items()}
    before, after = (statistics.median(summary[n]["ms_per_call_median"]) for n in environments)
    print(f"thresholds only / huge pages: {before / after:.2f} × per call")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"structure": args.structure, "model": args.model, "scale": args.scale, "results": summary,
                       "ratio_before_over_after": round(before / after, 3)}, handle, indent=1)
            handle.write("\n")


if __name__ == "__main__":
    main()
