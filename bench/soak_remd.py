"""Soak test of self-healing runs (not part of the test suite; run it by hand, minutes to hours).

An 8-replica REMD + well-tempered metadynamics study of Ac-Ala3-NHMe (backbone CVs; use --structure
for Ac-Ala15-NHMe with --cv end-to-end) runs with `sampling.run.run_study` while the driver is
SIGKILLed at random moments; afterwards every property file must hold every output step exactly
once, in order, and every HILLS file one hill per PACE steps, times strictly increasing (extended
across restarts, never started again or repeated).

    python bench/soak_remd.py [--steps 3000] [--kills 5] [--seed 0] [--out runs/soak]

Prints one line per kill and a verdict; exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from so3k_driver.ipi.properties import read_properties
from so3k_driver.sampling.analysis.plumed_files import read_plumed
from so3k_driver.sampling.run import prepare, run_study
from so3k_driver.sampling.settings import MetadSettings, StudySettings

DATA = Path(__file__).resolve().parents[1] / "so3k_driver" / "data"


def driver_pids(folder: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"so3k_driver.ipi.serving {folder}/"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def newest_step(folder: Path) -> int:
    steps = []
    for path in folder.glob("*.out"):
        try:
            column = read_properties(path).get("step")
        except (OSError, ValueError):
            continue
        if column is not None and len(column):
            steps.append(int(column[-1]))
    return min(steps) if steps else -1


def killer(folder: Path, kills: int, total: int, rng: random.Random, done: threading.Event, log: list) -> None:
    """Kill the driver `kills` times, at random steps spread over the run, each after progress resumed."""
    targets = sorted(rng.sample(range(total // 10, 9 * total // 10), kills))
    for target in targets:
        while not done.is_set() and newest_step(folder) < target:
            time.sleep(0.5)
        pids = driver_pids(folder)
        if done.is_set() or not pids:
            return
        time.sleep(rng.uniform(0.0, 1.0))  # land anywhere in a step: computing, sending or idle
        os.kill(pids[0], signal.SIGKILL)
        log.append(newest_step(folder))
        print(f"killed driver pid {pids[0]} near step {log[-1]}", flush=True)


def check(folder: Path, settings: StudySettings) -> list[str]:
    problems = []
    expected = list(range(0, settings.steps + 1, settings.output_stride))
    outputs = sorted(folder.glob("*.out"))
    if len(outputs) != len(settings.temperatures):
        problems.append(f"{len(outputs)} properties files for {len(settings.temperatures)} replicas")
    for path in outputs:
        steps = read_properties(path)["step"].astype(int).tolist()
        if steps != expected:
            repeated = sorted({s for s in steps if steps.count(s) > 1})
            missing = sorted(set(expected) - set(steps))
            problems.append(f"{path.name}: repeated steps {repeated[:10]}, missing {missing[:10]}")
    pace = settings.metad.pace
    for path in sorted(folder.glob("HILLS*")):
        times = read_plumed(path)["time"].round().astype(int).tolist()
        if times != sorted(set(times)) or len(times) != settings.steps // pace:
            problems.append(f"{path.name}: {len(times)} hills (expected {settings.steps // pace}), "
                            f"strictly increasing: {times == sorted(set(times))}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="ala3-xtb")
    parser.add_argument("--structure", default=str(DATA / "Ac-Ala3-NHMe_ext.xyz"))
    parser.add_argument("--cv", default="backbone")
    parser.add_argument("--out", default="runs/soak")
    args = parser.parse_args(argv)
    folder = Path(args.out).resolve()
    settings = StudySettings(structure=args.structure, model=args.model,
                             temperatures=tuple(np.geomspace(300, 450, 8).round(1)), steps=args.steps,
                             exchange_stride=10, output_stride=10,
                             metad=MetadSettings(cv=args.cv, pace=20, sigma=0.35 if args.cv == "backbone" else 0.5))
    prepare(folder, settings, force=True)
    done, kills = threading.Event(), []
    thread = threading.Thread(target=killer, args=(folder, args.kills, args.steps, random.Random(args.seed), done, kills),
                              daemon=True)
    started = time.time()
    thread.start()
    try:
        piece = run_study(folder, quiet=True, driver_restarts=args.kills + 2)
    finally:
        done.set()
        thread.join(timeout=5)
    problems = check(folder, settings)
    print(f"{args.steps} steps × 8 replicas in {time.time() - started:.0f} s, driver killed {len(kills)} times "
          f"(near steps {kills}); reached step {piece.last_step}")
    for problem in problems:
        print("FAIL", problem)
    print("PASS: every step present once, HILLS intact" if not problems and len(kills) == args.kills else "FAILED")
    return 0 if not problems and len(kills) == args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
