"""Energy+forces time per call, as ratios to a calibration workload timed in the same run.

    python bench/bench_model.py                 # SO3krates, paper hyperparameters (random weights)
    python bench/bench_model.py --model so3lr   # published SO3LR (needs ../shared/reference/so3lr)

Calibration: a float32 512x512 numpy matmul repeated 10 times. Each workload is timed as the
median of --repeats calls after compilation; calibration is re-timed between workloads and its
median over the whole run is used, so the ratios compare across machines. Systems: Ac-Ala3-NHMe
(42 atoms), Ac-Ala15-NHMe (162), a (6,6) carbon nanotube (384 atoms, gas phase), and 32 copies of
Ac-Ala3-NHMe in one batched call.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "so3k_driver" / "data"
SO3LR_DIR = REPO.parent / "shared" / "reference" / "so3lr"

# The authors' code on a quiet 2-core machine, in calibration units (issue texts).
AUTHORS = {
    "paper": {("float32", 42): 0.73, ("float32", 162): 3.8, ("float32", 384): 18.0},
    "so3lr": {("float32", 42): 1.1, ("float32", 162): 4.1, ("float32", 384): 18.0,
              ("float64", 42): 1.9, ("float64", 162): 7.2, ("float64", 384): 28.0},
}


def calibration_seconds() -> float:
    a = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    start = time.perf_counter()
    for _ in range(10):
        a @ a
    return time.perf_counter() - start


def median_call_seconds(function, repeats: int) -> float:
    function()  # compile
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def systems():
    import ase.io
    from ase.build import nanotube

    ala3 = ase.io.read(DATA / "Ac-Ala3-NHMe_ext.xyz")
    ala15 = ase.io.read(DATA / "Ac-Ala15-NHMe_ext.xyz")
    tube = nanotube(6, 6, length=16)
    tube.pbc = False
    return {42: ala3, 162: ala15, len(tube): tube}


def load(model: str, dtype: str):
    from so3k_driver.potential import Potential

    if model == "so3lr":
        return Potential.load(f"so3lr:{SO3LR_DIR}", dtype=dtype)
    from so3k_driver.config import ModelConfig
    from so3k_driver.model.energy import initial_parameters

    config = ModelConfig()  # the paper configuration
    return Potential(config, initial_parameters(config, seed=0), dtype=dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["paper", "so3lr"], default="paper")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dtypes", default="float32,float64")
    args = parser.parse_args()

    calibrations = [min(calibration_seconds() for _ in range(5))]
    rows = []
    structures = systems()
    for dtype in args.dtypes.split(","):
        potential = load(args.model, dtype)
        for n, atoms in structures.items():
            seconds = median_call_seconds(lambda: potential.evaluate_atoms(atoms), args.repeats)
            calibrations.append(min(calibration_seconds() for _ in range(5)))
            rows.append((dtype, f"{n} atoms", n, 1, seconds))
        ala3 = structures[42]
        batch = np.stack([ala3.positions + 0.01 * k for k in range(32)])
        seconds = median_call_seconds(lambda: potential.evaluate(ala3.numbers, batch), max(5, args.repeats // 4))
        calibrations.append(min(calibration_seconds() for _ in range(5)))
        rows.append((dtype, "B=32 x 42 atoms", 42, 32, seconds))

    calibration = statistics.median(calibrations)
    print(f"model: {args.model}; calibration (10 x float32 512x512 matmul): {calibration * 1e3:.2f} ms "
          f"(range {min(calibrations) * 1e3:.2f}-{max(calibrations) * 1e3:.2f})")
    print(f"{'dtype':<8} {'system':<17} {'ms/call':>9} {'ratio':>7} {'authors':>8} {'speed-up':>9} {'structures/s':>13}")
    for dtype, label, n, batch_size, seconds in rows:
        ratio = seconds / calibration
        authors = AUTHORS[args.model].get((dtype, n)) if batch_size == 1 else None
        speedup = f"{authors / ratio:8.2f}x" if authors else f"{'-':>9}"
        print(f"{dtype:<8} {label:<17} {seconds * 1e3:9.2f} {ratio:7.3f} {authors or '-':>8} {speedup} "
              f"{batch_size / seconds:13.1f}")


if __name__ == "__main__":
    main()
