"""``so3k serve`` behind a real i-PI, with and without the huge pages it now restarts itself with (issue #12).

    python bench/bench_serve_huge_pages.py STRUCTURE --model so3lr:DIR [--scale 0.93] [--steps 300]
        [--rounds 2] [--json OUT.json]

The case a user meets on a cluster: i-PI started by hand on an NVT input and ``so3k serve`` connected to it,
the model in the command's own process. One structure (the last frame of STRUCTURE, optionally shrunk about
its centre by --scale so that its scratch is beyond a thread heap's 64 MiB), 1 bead, 300 K, 0.5 fs, float32,
long-range terms over all pairs. Each round runs two cases, one after the other:

- ``before``: the command line entered as a library call (``main(argv)``), which does not restart itself:
  glibc's thresholds raised by mallopt only, as before 2026-12-07;
- ``restart``: ``python -m so3k_driver.cli serve``, which starts itself again in place with
  ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (``host_memory.restart_with_huge_pages``).

Printed per case: the driver's steady-state ms per call and model ms per call (its own log, ``-v``), the
minor page faults of the driver process (``wait4``) and whether its environment had the tunables. One
structure per step, so ms per call is ms per MD step as the driver sees it. Ratios are measured in one run;
the cores may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY_CALL = "import sys; from so3k_driver.cli.main import main; sys.exit(main(sys.argv[1:]))"
STEADY = re.compile(r"steady state ([\d.]+) ms per call: model ([\d.]+)")


def shrunk_frame(structure: str, scale: float, folder: str) -> str:
    import ase.io

    from so3k_driver.ipi.structures import ipi_xyz

    atoms = ase.io.read(structure, index=-1)
    centre = atoms.positions.mean(axis=0)
    atoms.positions = centre + scale * (atoms.positions - centre)
    path = os.path.join(folder, "frame.xyz")
    with open(path, "w") as handle:
        handle.write(ipi_xyz(atoms))
    return path


def write_input(folder: str, frame: str, steps: int, address: str) -> str:
    text = (REPO / "ipi_inputs" / "nvt.xml").read_text()
    for old, new in ((" ala3.xyz ", f" {frame} "), ("<total_steps> 100 </total_steps>", f"<total_steps> {steps} </total_steps>"),
                     ("<address> so3k-nvt </address>", f"<address> {address} </address>"),
                     ("<checkpoint stride='1000'/>", "")):
        if old not in text:
            raise SystemExit(f"bench_serve_huge_pages: {old!r} not in ipi_inputs/nvt.xml any more")
        text = text.replace(old, new)
    path = os.path.join(folder, "input.xml")
    Path(path).write_text(text)
    return path


def plain_environment() -> dict:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "SO3K_HOST_MEMORY")}


def read_environment(pid: int, wait_for: str | None, seconds: float = 10.0) -> list[str]:
    """The environment of process ``pid`` as /proc shows it (after an execve: the new one), once it holds
    ``wait_for`` or after ``seconds``."""
    deadline = time.monotonic() + seconds
    entries: list[str] = []
    while time.monotonic() < deadline:
        try:
            entries = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            break
        if wait_for is not None and any(entry.startswith(wait_for + "=") for entry in entries):
            break
        time.sleep(0.1)
    return entries


def run_case(case: str, folder: str, frame: str, model: str, steps: int) -> dict:
    from so3k_driver.ipi.executables import ipi_executable

    address = f"hpbench-{os.getpid()}-{case}-{time.monotonic_ns()}"
    workdir = os.path.join(folder, f"{case}-{time.monotonic_ns()}")
    os.makedirs(workdir)
    input_path = write_input(workdir, frame, steps, address)
    ipi = subprocess.Popen([sys.executable, str(ipi_executable()), input_path], cwd=workdir, env=plain_environment(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    entry = ["-c", LIBRARY_CALL] if case == "before" else ["-m", "so3k_driver.cli"]
    serve = [sys.executable, *entry, "serve", model, "--unix", address, "--structure", frame, "--dtype", "float32",
             "--lr-cutoff", "0", "--max-force", "0", "-v"]
    log_path = os.path.join(workdir, "serve.log")
    with open(log_path, "w") as log:
        driver = subprocess.Popen(serve, cwd=workdir, env=plain_environment(), stdout=log, stderr=subprocess.STDOUT)
        environment = read_environment(driver.pid, wait_for="GLIBC_TUNABLES" if case == "restart" else None)
        _, status, usage = os.wait4(driver.pid, 0)
    driver.returncode = os.waitstatus_to_exitcode(status)
    ipi.wait(timeout=120)
    text = Path(log_path).read_text()
    steady = STEADY.search(text)
    if driver.returncode != 0 or steady is None:
        raise SystemExit(f"bench_serve_huge_pages: the {case} driver failed (exit {driver.returncode}):\n{text[-2000:]}")
    return {"case": case, "ms_per_call": float(steady.group(1)), "model_ms_per_call": float(steady.group(2)),
            "minor_faults": usage.ru_minflt, "faults_per_call": usage.ru_minflt / steps,
            "huge_page_tunables": "GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in environment}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("structure")
    parser.add_argument("--model", required=True)
    parser.add_argument("--scale", type=float, default=0.93)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_serve_hp_") as folder:
        frame = shrunk_frame(args.structure, args.scale, folder)
        for round_index in range(args.rounds):
            for case in ("before", "restart"):
                result = run_case(case, folder, frame, args.model, args.steps) | {"round": round_index}
                results.append(result)
                print(f"round {round_index} {case:8s} tunables {str(result['huge_page_tunables']):5s} "
                      f"{result['ms_per_call']:7.1f} ms per call (model {result['model_ms_per_call']:6.1f}) "
                      f"{result['faults_per_call']:8.0f} faults per call", flush=True)
    for case in ("before", "restart"):
        times = sorted(r["ms_per_call"] for r in results if r["case"] == case)
        print(f"{case:8s} ms per call: {', '.join(f'{t:.1f}' for t in times)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"structure": args.structure, "model": args.model, "scale": args.scale,
                                               "steps": args.steps, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
