"""Benchmark of the i-PI path (not a test). Prints steps/s and ratios measured in this one run.

    .venv/bin/python bench/bench_ipi.py [--model mlff:DIR] [--steps 100] [--pimd-steps 6]

Cases (42-atom Ac-Ala3-NHMe, gas phase): the model's own energy+forces time; i-PI NVT with our
driver over a unix socket and over shared memory; 32-bead PIMD with batch_size 32 vs 1.
Rates are measured from the properties file between a warm-up step and the last step, so start-up
and JIT compilation are excluded.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from so3k_driver.ipi.executables import ipi_executable
from so3k_driver.ipi.properties import read_last_record
from so3k_driver.ipi.serving import ServeOptions, serve_model

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "ipi_inputs"
# Optional pinning: a command prefix for i-PI (e.g. "taskset -c 0") and the driver's cores (e.g. "1").
IPI_PREFIX = os.environ.get("BENCH_IPI_PREFIX", "").split()
DRIVER_CORES = {int(c) for c in os.environ.get("BENCH_DRIVER_CORES", "").split(",") if c.strip()}


def _serve(options: ServeOptions, cores: set[int]) -> None:
    """The driver process: `so3k serve` as a library call, pinned to cores when given."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # as so3k serve does, before JAX loads
    if cores:
        os.sched_setaffinity(0, cores)
    serve_model(options)


def model_time(model: str, repeats: int = 20) -> float:
    from so3k_driver.ipi.structures import read_numbers
    from so3k_driver.evaluation.potential import Potential

    numbers = read_numbers(str(INPUTS / "ala3.xyz"))
    positions = np.loadtxt(INPUTS / "ala3.xyz", skiprows=2, usecols=(1, 2, 3))
    potential = Potential.load(model)
    potential.evaluate(numbers, positions)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        potential.evaluate(numbers, positions + 1e-3 * np.random.default_rng(len(times)).normal(size=positions.shape))
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def last_step(path: Path) -> int:
    try:
        record = read_last_record(path)
    except OSError:
        return -1
    return int(record["step"]) if record else -1


def ipi_rate(source: str, replacements, steps: int, warmup: int, model: str, label: str) -> float:
    """Steps/s of i-PI + one `so3k serve` between step `warmup` and step `steps`."""
    text = (INPUTS / source).read_text()
    address = f"so3k-bench-{os.getpid()}-{label}"
    for old, new in list(replacements) + [("> 100 <", f"> {steps} <"), ("<address> so3k-nvt </address>", f"<address> {address} </address>"),
                                          ("<address> so3k-pimd </address>", f"<address> {address} </address>")]:
        text = text.replace(old, new)
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        (work / "in.xml").write_text(text)
        (work / "ala3.xyz").write_text((INPUTS / "ala3.xyz").read_text())
        prefix = "pimd" if "pimd" in source else "nvt"
        ipi = subprocess.Popen(IPI_PREFIX + [str(ipi_executable()), "in.xml"], cwd=work,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not os.path.exists(f"/tmp/ipi_{address}"):
            time.sleep(0.05)
        options = ServeOptions(model=model, structure=str(work / "in.xml"), unix=address, shm="mode='shm'" in text)
        driver = multiprocessing.get_context("spawn").Process(target=_serve, args=(options, DRIVER_CORES))
        driver.start()
        out = work / f"{prefix}.out"
        # Time from the warm-up step to the moment the last step is written, not to i-PI's exit:
        # its shutdown (RESTART, joining threads) takes up to a second and is not MD throughput.
        t_warm = t_end = None
        while ipi.poll() is None and t_end is None:
            step = last_step(out)
            if t_warm is None and step >= warmup:
                t_warm, s_warm = time.perf_counter(), step
            if step >= steps:
                t_end, final = time.perf_counter(), step
            time.sleep(0.002)
        ipi.wait(60)
        driver.join(30)
        if t_end is None or t_warm is None:
            raise RuntimeError(f"{label}: i-PI stopped before step {steps} (see its output in {work})")
    rate = (final - s_warm) / (t_end - t_warm)
    print(f"  {label:<34} {rate:8.2f} steps/s", flush=True)
    return rate


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=f"mlff:{REPO.parent / 'shared/reference/so3krates_random'}")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--pimd-steps", type=int, default=6)
    args = parser.parse_args()
    print(f"model {args.model}, {os.cpu_count()} CPU cores")
    t_model = model_time(args.model)
    print(f"  model energy+forces, 42 atoms      {t_model * 1e3:8.2f} ms  (= {1 / t_model:.1f} evaluations/s)")
    nvt_unix = ipi_rate("nvt.xml", [], args.steps, 20, args.model, "NVT 1 bead, unix")
    nvt_shm = ipi_rate("nvt.xml", [("mode='unix'", "mode='shm'")], args.steps, 20, args.model, "NVT 1 bead, shm")
    pimd = {}
    for batch in (32, 1):
        pimd[batch] = ipi_rate("pimd.xml", [("<initialize nbeads='8'>", "<initialize nbeads='32'>"),
                                            ("<batch_size> 8 </batch_size>", f"<batch_size> {batch} </batch_size>")],
                               args.pimd_steps, 2, args.model, f"PIMD 32 beads, batch_size {batch}")
    print("ratios")
    print(f"  NVT (unix) steps/s / model evaluations/s   {nvt_unix * t_model:6.3f}")
    print(f"  NVT shm / unix                             {nvt_shm / nvt_unix:6.3f}")
    print(f"  PIMD-32 batched / unbatched                {pimd[32] / pimd[1]:6.3f}")


if __name__ == "__main__":
    main()
