"""Where an i-PI MD step's time goes (issue #12). A benchmark, not a test: prints one table.

    .venv/bin/python bench/bench_ipi_step.py [--model ala3-xtb|so3lr:DIR|FILE.so3k] [--steps 300]
        [--repeats 3] [--cases shipped,minimal,...] [--list]

Ac-Ala3-NHMe (42 atoms), 1-bead NVT (ipi_inputs/nvt.xml), i-PI + our driver through the runner of
`so3k run` (`run_simulation`, or the `so3k` command itself for the progress-display cases). Each case
changes ONE thing against the shipped input (or against the minimal-output input, where it says so).

What is measured, in one run, interleaved: every round runs every case once (A B C ... A B C ...), and
before each round the model's own single call (Potential.evaluate on the same structure in this process,
median of --model-calls calls) is timed again, so a step/model ratio always compares numbers taken
minutes apart under the same load.

ms/step is the driver's steady-state figure (so3k_driver_calls.json, server.CallCounter.timing: from the
end of model call 10 to the end of the last call, divided by the MD steps in between), so start-up, JIT
compilation and i-PI's shutdown are excluded and outputs that are written rarely do not hide the rate;
a later call that compiled a new shape (the pair list outgrew its bucket) is left out too and shown as
"+N compiles" (it costs seconds once per run, which a 300-step run would spread over every step).
The direct backend (`so3k run --backend direct`: the model inside i-PI, <ffdirect>) reports the same
figures from direct_pes.py.
Besides ms/step the table gives, per call: the model inside the run ("model"; compare with the isolated
call: both processes share the cores), the driver's wait for i-PI ("i-PI": integration, outputs, its
poll latency, the socket round trips) and the driver's own work ("own": read, decode, encode, send).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pty
import re
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from bench_cases import chosen_cases, spread

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "ipi_inputs"
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
RARELY = 1_000_000  # a stride no benchmark run reaches (MD steps)


# ------------------------------------------------------------------------------------------------
# Edits of the shipped input, one setting each (applied to the text so every other line stays).
def _sub(pattern, replacement):
    def edit(text):
        new, count = re.subn(pattern, replacement, text, flags=re.S)
        if not count:
            raise ValueError(f"pattern {pattern!r} not in the input")
        return new
    return edit


def _chain(*edits):
    def edit(text):
        for one in edits:
            text = one(text)
        return text
    return edit


def properties_stride(n):
    return _sub(r"(<properties stride=')\d+(')", rf"\g<1>{n}\g<2>")


def properties_flush(n):
    return _sub(r"<properties ", f"<properties flush='{n}' ")


def trajectory_stride(n):
    return _sub(r"(<trajectory filename='pos' stride=')\d+(')", rf"\g<1>{n}\g<2>")


no_trajectory = _sub(r"\s*<trajectory filename='pos'[^\n]*</trajectory>", "")


def checkpoint_stride(n):
    return _sub(r"(<checkpoint stride=')\d+(')", rf"\g<1>{n}\g<2>")


def safe_stride(n):
    return _sub(r"(safe_stride=')\d+(')", rf"\g<1>{n}\g<2>")


def latency(seconds):
    return _sub(r"<latency>[^<]*</latency>", f"<latency> {seconds:g} </latency>")


def verbosity(level):
    return _sub(r"(verbosity=')\w+(')", rf"\g<1>{level}\g<2>")


def threading_attribute(value):
    return _sub(r"<simulation ", f"<simulation threading='{value}' ")


minimal = _chain(properties_stride(RARELY), no_trajectory, checkpoint_stride(RARELY))


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    what: str
    edit: object = None  # text -> text
    backend: str = "socket"  # socket | direct
    runner: str = "library"  # library (run_simulation, quiet) | cli-quiet | cli-tty (live bar on a pty)
    environment: tuple = ()  # extra environment of i-PI and the driver


CASES = [
    Case("shipped", "ipi_inputs/nvt.xml as shipped (properties every 10 steps, checkpoint every 1000)"),
    Case("minimal", "outputs: properties and checkpoint every 1e6 steps, no trajectory", minimal),
    Case("before", "the input before issue #12: properties every step, checkpoint every 10",
         _chain(properties_stride(1), checkpoint_stride(10))),
    Case("props1", "properties stride 1", properties_stride(1)),
    Case("flush100", "properties stride 1, fsynced every 100 lines (i-PI's default: every line)",
         _chain(properties_stride(1), properties_flush(100))),
    Case("traj1", "trajectory stride 1", trajectory_stride(1)),
    Case("notraj", "no trajectory", no_trajectory),
    Case("chk10", "checkpoint stride 10", checkpoint_stride(10)),
    Case("chk1", "checkpoint stride 1", checkpoint_stride(1)),
    Case("safe1", "safe_stride 1", safe_stride(1)),
    Case("safe100", "safe_stride 100", safe_stride(100)),
    Case("lat1e-3", "socket latency 1e-3 s", latency(1e-3)),
    Case("lat1e-5", "socket latency 1e-5 s", latency(1e-5)),
    Case("verbose", "verbosity high (shipped: low)", verbosity("high")),
    Case("nothread", "<simulation threading='false'>", threading_attribute("false")),
    Case("xla1", "driver XLA single-threaded (XLA_FLAGS)", environment=(("XLA_FLAGS", SINGLE_THREAD_XLA),)),
    Case("direct", "ffdirect backend (model inside i-PI), shipped outputs", backend="direct"),
    Case("min-direct", "ffdirect backend, minimal outputs", minimal, backend="direct"),
    Case("cli-quiet", "`so3k run --quiet` (command, no display)", runner="cli-quiet"),
    Case("cli-tty", "`so3k run` on a terminal (live progress bar)", runner="cli-tty"),
]


# ------------------------------------------------------------------------------------------------
def model_call_ms(potential, numbers, positions, calls: int) -> list[float]:
    """Milliseconds of single Potential.evaluate calls on slightly displaced copies of the structure."""
    rng = np.random.default_rng(0)
    times = []
    for _ in range(calls):
        moved = positions + 1e-3 * rng.normal(size=positions.shape)
        start = time.perf_counter()
        potential.evaluate(numbers, moved)
        times.append(1e3 * (time.perf_counter() - start))
    return times


def _drain(master: int, stop: threading.Event) -> None:
    while not stop.is_set():
        if select.select([master], [], [], 0.1)[0]:
            try:
                os.read(master, 65536)
            except OSError:
                return


def run_case(case: Case, model: str, steps: int, tag: str) -> dict:
    """One i-PI run of case; returns the driver's timing record (server.CallCounter.summary())."""
    from so3k_driver.ipi.runner import RunOptions, run_simulation

    with tempfile.TemporaryDirectory(prefix=f"bench-step-{case.name}-") as folder:
        work = Path(folder)
        text = (INPUTS / "nvt.xml").read_text()
        text = text.replace("<file mode='xyz'> ala3.xyz </file>", f"<file mode='xyz'> {INPUTS / 'ala3.xyz'} </file>")
        if case.edit is not None:
            text = case.edit(text)
        xml = work / "input.xml"
        xml.write_text(text)
        address = f"so3k-bstep-{os.getpid()}-{tag}"
        saved = {key: os.environ.get(key) for key, _ in case.environment}
        os.environ.update(dict(case.environment))
        try:
            if case.runner == "library":
                run_simulation(RunOptions(input=str(xml), model=model, workdir=str(work), steps=steps, address=address,
                                          quiet=True, timeout_s=300, backend=case.backend))
            else:
                command = [sys.executable, "-m", "so3k_driver.cli", "run", str(xml), "--model", model,
                           "--workdir", str(work), "--steps", str(steps), "--address", address]
                if case.runner == "cli-quiet":
                    subprocess.run(command + ["--quiet"], check=True, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=600)
                else:
                    master, slave = pty.openpty()
                    stop = threading.Event()
                    reader = threading.Thread(target=_drain, args=(master, stop), daemon=True)
                    reader.start()
                    try:
                        subprocess.run(command, check=True, stdin=slave, stdout=slave, stderr=slave, timeout=600)
                    finally:
                        stop.set()
                        reader.join(1)
                        os.close(slave)
                        os.close(master)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return json.loads((work / "so3k_driver_calls.json").read_text())


ENGINE_TIMING = re.compile(r"Average timings at MD step\s+(\d+)\. t/step:\s+(\S+)")


def engine_case_ms(case: Case, steps: int, tag: str) -> float | None:
    """i-PI alone: ms/step of a case with a zero-cost PES (i-PI's dummy: zero forces), from i-PI's own
    'Average timings' lines (verbosity medium: one per 100 steps; the line of step 0 is dropped).
    Socket cases use i-PI's Python driver in dummy mode; None for cases that only concern our side."""
    if case.runner != "library" or case.environment:
        return None
    from so3k_driver.ipi.executables import ipi_executable

    with tempfile.TemporaryDirectory(prefix=f"bench-engine-{case.name}-") as folder:
        work = Path(folder)
        text = (INPUTS / "nvt.xml").read_text()
        text = text.replace("<file mode='xyz'> ala3.xyz </file>", f"<file mode='xyz'> {INPUTS / 'ala3.xyz'} </file>")
        text = re.sub(r"<total_steps>[^<]*</total_steps>", f"<total_steps> {steps} </total_steps>", text)
        text = verbosity("medium")(text)
        if case.edit is not None:
            text = case.edit(text)
        address = f"so3k-beng-{os.getpid()}-{tag}"
        text = re.sub(r"<address>[^<]*</address>", f"<address> {address} </address>", text)
        if case.backend == "direct":
            text = re.sub(r"<ffsocket .*?</ffsocket>", "<ffdirect name='so3k'> <pes> dummy </pes> </ffdirect>", text,
                          flags=re.S)
        (work / "input.xml").write_text(text)
        socket_file = Path(f"/tmp/ipi_{address}")
        with open(work / "ipi.log", "w") as log:
            ipi = subprocess.Popen([str(ipi_executable()), "input.xml"], cwd=work, stdout=log, stderr=subprocess.STDOUT)
            driver = None
            try:
                if case.backend == "socket":
                    while not socket_file.exists() and ipi.poll() is None:
                        time.sleep(0.02)
                    driver = subprocess.Popen([str(Path(sys.executable).parent / "i-pi-py_driver"), "-u", "-a", address,
                                               "-m", "dummy"], cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                ipi.wait(600)
            finally:
                for process in (driver, ipi):
                    if process is not None and process.poll() is None:
                        process.kill()
                        process.wait()
                socket_file.unlink(missing_ok=True)
        timings = [float(t) for step, t in ENGINE_TIMING.findall((work / "ipi.log").read_text()) if int(step) > 0]
        if len(timings) > steps // 50:  # verbosity high: one line per step; average them per 100 like medium
            timings = [statistics.fmean(timings[k:k + 100]) for k in range(0, len(timings), 100)]
        return 1e3 * statistics.median(timings) if timings else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ala3-xtb", help="ala3-xtb, default, so3lr:DIR, FILE.so3k, mlff:DIR")
    parser.add_argument("--steps", type=int, default=300,
                        help="MD steps per run with the model (the first 10 are not timed; 0: i-PI alone only)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over all cases")
    parser.add_argument("--engine-steps", type=int, default=1000,
                        help="MD steps of the zero-cost-PES runs (i-PI alone; 0: skip them)")
    parser.add_argument("--model-calls", type=int, default=60, help="isolated model calls timed before each round")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES), help="comma-separated case names")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--json", help="also write every measurement here")
    args = parser.parse_args()
    chosen = chosen_cases(parser, args, CASES)
    if chosen is None:
        return

    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.ipi.structures import read_numbers

    numbers = read_numbers(str(INPUTS / "ala3.xyz"))
    positions = np.loadtxt(INPUTS / "ala3.xyz", skiprows=2, usecols=(1, 2, 3))
    potential = Potential.load(args.model)
    potential.evaluate(numbers, positions)  # compile
    load = os.getloadavg()
    print(f"model {args.model}; {os.cpu_count()} CPU cores; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"at start; {args.steps} steps per run, {args.repeats} rounds; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
          flush=True)
    model_rounds, records = [], {case.name: [] for case in chosen}
    engine = {case.name: [] for case in chosen}
    for round_ in range(args.repeats):
        calls = model_call_ms(potential, numbers, positions, args.model_calls)
        model_rounds.append(statistics.median(calls))
        print(f"round {round_ + 1}: model call {model_rounds[-1]:.2f} ms (median of {len(calls)})", flush=True)
        for case in chosen:
            alone = engine_case_ms(case, args.engine_steps, f"{case.name}-{round_}") if args.engine_steps else None
            if alone is not None:
                engine[case.name].append(alone)
            if not args.steps:
                print(f"  {case.name:<11} i-PI alone {alone} ms/step", flush=True)
                continue
            record = run_case(case, args.model, args.steps, f"{case.name}-{round_}")
            record["model_call_ms"] = model_rounds[-1]
            records[case.name].append(record)
            print(f"  {case.name:<11} {record['ms_per_step']:7.2f} ms/step  ratio {record['ms_per_step'] / model_rounds[-1]:5.2f}"
                  f"  (in run: model {record['model_ms_per_call']:.2f}, i-PI {record['idle_ms_per_call']:.2f}, "
                  f"own {record['own_ms_per_call']:.2f} ms)"
                  + (f" +{record['compiling_calls']} compiles ({record['compiling_s']:.1f} s)" if record.get('compiling_calls') else "")
                  + (f"; i-PI alone {alone:.3f} ms/step" if alone is not None else ""), flush=True)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; model call (isolated) per round: "
          + ", ".join(f"{t:.2f}" for t in model_rounds) + " ms")
    print(f"\n{'case':<11} {'ms/step median [min-max]':<26} {'step/model':<24} {'model':>6} {'i-PI':>6} {'own':>6}  "
          f"{'i-PI alone ms/step':<26} what")
    for case in chosen:
        rows = records[case.name]
        if not rows:
            print(f"{case.name:<11} i-PI alone {spread(engine[case.name]) if engine[case.name] else '-'}  {case.what}")
            continue
        ms = [r["ms_per_step"] for r in rows]
        ratio = [r["ms_per_step"] / r["model_call_ms"] for r in rows]
        parts = [statistics.median(r[k] for r in rows) for k in ("model_ms_per_call", "idle_ms_per_call", "own_ms_per_call")]
        alone = spread(engine[case.name]) if engine[case.name] else "-"
        print(f"{case.name:<11} {spread(ms):<26} {spread(ratio):<24} {parts[0]:6.2f} {parts[1]:6.2f} {parts[2]:6.2f}  "
              f"{alone:<26} {case.what}")
    print("model / i-PI / own: medians per model call inside the runs, ms (see the module doc); i-PI alone: the same "
          "input with a zero-cost PES (ffdirect dummy, or i-PI's Python driver in dummy mode for socket cases)")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "steps": args.steps, "model_call_ms": model_rounds,
                                               "cases": records, "engine_ms_per_step": engine}, indent=1))


if __name__ == "__main__":
    main()
