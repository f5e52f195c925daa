"""One short GPU check: per-call model times, i-PI steps/s and GPU memory, written as one JSON.

    python bench/gpu_check.py --out gpu_check.json            # on the GPU machine (see gpu_check.sh)
    python bench/gpu_check.py --out cpu.json --quick          # the same on a CPU, few repeats (smoke test)

Per-call times (ms; median and spread over repeats after compilation) of Potential.evaluate, host work
included, for Ac-Ala3-NHMe (42 atoms), Ac-Ala15-NHMe (162), a (6,6) carbon nanotube of 384 atoms and one
of 1536 atoms, each in float32 and float64, plus a batch of 8 x Ac-Ala15-NHMe; SO3LR too when its
parameters are given (--so3lr DIR). Then NVT (Ac-Ala3-NHMe, 1 bead) and REMD (4 replicas) steps/s
through i-PI with `so3k run`, and the peak GPU memory JAX reports. Everything runs in this one process
(plus i-PI and its drivers), well under 8 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "so3k_driver" / "data"


def systems():
    import ase.io
    from ase.build import nanotube

    ala3 = ase.io.read(DATA / "Ac-Ala3-NHMe_ext.xyz")
    ala15 = ase.io.read(DATA / "Ac-Ala15-NHMe_ext.xyz")
    short, long = nanotube(6, 6, length=16), nanotube(6, 6, length=64)
    for tube in (short, long):
        tube.pbc = False
    return {"ala3_42": ala3, "ala15_162": ala15, f"cnt_{len(short)}": short, f"cnt_{len(long)}": long}


def time_calls(function, repeats: int) -> dict:
    from bench_model import call_times  # bench/ is on the path when this script runs

    times_ms = np.array(call_times(function, repeats)) * 1e3
    return {"median_ms": float(np.median(times_ms)), "min_ms": float(times_ms.min()),
            "p90_ms": float(np.percentile(times_ms, 90)), "repeats": repeats}


def model_times(spec: str, device: str | None, repeats: int, quick: bool, log) -> dict:
    from so3k_driver.evaluation.potential import Potential

    results = {}
    structures = systems()
    for dtype in ("float32", "float64"):
        potential = Potential.load(spec, dtype=dtype, device=device)
        for name, atoms in structures.items():
            if quick and len(atoms) > 400:
                continue
            if not set(atoms.numbers) <= set(potential.species):
                continue
            results[f"{dtype}/{name}"] = time_calls(lambda a=atoms: potential.evaluate_atoms(a), repeats)
            log(f"{spec} {dtype} {name}: {results[f'{dtype}/{name}']['median_ms']:.2f} ms")
        ala15 = structures["ala15_162"]
        batch = np.stack([ala15.positions + 0.01 * k for k in range(8)])
        key = f"{dtype}/batch_8x162"
        results[key] = time_calls(lambda: potential.evaluate(ala15.numbers, batch), max(3, repeats // 2))
        log(f"{spec} {dtype} 8x162: {results[key]['median_ms']:.2f} ms")
    return results


def ipi_rate(xml: str, steps: int, device: str | None, extra: list[str], log) -> dict:
    """`so3k run` on a shipped input: the wall time (start-up included) and the steady state the driver
    records in its so3k_driver*_calls.json (ms per step and per model call, calls per step; the first
    calls and any that compiled left out). 2026-12-04's first GPU check reported the wall time only."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "so3k_driver.cli", "run", str(REPO / "ipi_inputs" / xml), "--model",
                   "default", "--steps", str(steps), "--workdir", folder, "--quiet",
                   "--address", f"gpucheck-{os.getpid()}-{xml[:-4]}", *extra]
        if device:
            command += ["--device", device]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            return {"error": result.stderr.strip()[-500:]}
        report = {"steps": steps, "wall_s_including_startup": wall, "steps_per_s_including_startup": steps / wall}
        steady = []
        for stats in sorted(Path(folder).glob("so3k_driver*_calls.json")):
            record = json.loads(stats.read_text())
            report[stats.stem] = {key: record.get(key) for key in ("calls_per_step", "ms_per_step", "ms_per_call",
                                                                   "model_ms_per_call", "idle_ms_per_call",
                                                                   "timed_calls")}
            steady += [record["ms_per_step"]] if record.get("ms_per_step") else []
        log(f"i-PI {xml}: {steps} steps in {wall:.1f} s (start-up included)"
            + (f"; steady state {steady[0]:.2f} ms per step" if steady else ""))
        return report


def memory() -> dict:
    import jax

    stats = {}
    for device in jax.devices():
        usage = device.memory_stats() or {}
        stats[str(device)] = {k: usage[k] for k in ("peak_bytes_in_use", "bytes_in_use", "bytes_limit") if k in usage}
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--device", default=None, help="JAX device for the model (default: JAX's, the GPU if any)")
    parser.add_argument("--so3lr", default=None, help="SO3LR parameter directory (optional)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="few repeats, no 1536-atom system, short i-PI runs")
    args = parser.parse_args()
    import jax

    def log(text):
        print(f"[gpu_check] {text}", file=sys.stderr, flush=True)

    repeats = 3 if args.quick else args.repeats
    started = time.perf_counter()
    report = {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()], "host": platform.node(),
              "python": sys.version.split()[0], "models": {}}
    report["models"]["default (so3lr-student)"] = model_times("default", args.device, repeats, args.quick, log)
    if args.so3lr:
        report["models"]["so3lr"] = model_times(f"so3lr:{args.so3lr}", args.device, repeats, args.quick, log)
    steps = 50 if args.quick else 400
    report["ipi"] = {"nvt_ala3": ipi_rate("nvt.xml", steps, args.device, [], log),
                     "remd_4x_ala3": ipi_rate("remd.xml", steps // 2, args.device, ["--connections", "4"], log)}
    report["memory"] = memory()
    report["wall_s"] = time.perf_counter() - started
    Path(args.out).write_text(json.dumps(report, indent=1))
    log(f"wrote {args.out} in {report['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
