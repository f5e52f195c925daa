"""What a replica-exchange step costs against one model call (issue #12). A benchmark, not a test.

    .venv/bin/python bench/bench_remd_step.py [--model ala3-xtb|so3lr:DIR|FILE.so3k] [--structure ipi_inputs/ala3.xyz]
        [--replicas 8] [--steps 300] [--rounds 2] [--metad none|end-to-end|...] [--cases socket,direct,...]
        [--json OUT.json] [--list]

Each case is a study written by the library behind `so3k sample init` (`sampling.run.prepare`: REMD at
--replicas temperatures 300-450 K, no metadynamics, 0.5 fs, one batched forcefield with batch_size =
replicas; --metad adds well-tempered metadynamics at every temperature, as the folding study) and run by
the one behind `so3k sample run` (`run_study`); a case then changes ONE setting of its input.xml (the poll
latency of the forcefield), or puts a stand-in for the model inside i-PI (`standin_pes.py`: zero forces
after sleeping the isolated call's time, or at once), which leaves what i-PI itself costs per step. Every round runs every case once, interleaved, and
before each round the isolated model call on a full batch (Potential.evaluate, replicas x the structure,
slightly displaced, median of --model-calls calls, in this process) is timed again.

Reported per case (medians over rounds, [min-max]): model calls per MD step (1.00 = every step in one
call; i-PI's padding of short batches not counted), ms per step in the steady state (the driver's or
the in-process PES's figure: model call 10 to the end, calls that compiled left out), the model's own
ms per call inside the run, the wait for i-PI per call (its stepping of every replica, outputs, poll
latency), and step / call: the step against the model call inside the same run, and against the
isolated call of that round. Goal (issue #12): one call per step and a step <= 1.2 x that call.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
from bench_cases import chosen_cases, spread

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STRUCTURE = REPO / "ipi_inputs" / "ala3.xyz"
STANDIN_PES = Path(__file__).resolve().parent / "standin_pes.py"


def with_latency(seconds: float):
    """Set (or add) the forcefield's <latency>: the interval of i-PI's poll thread, s."""
    def edit(text: str, context: dict) -> str:
        if "<latency>" in text:
            return re.sub(r"<latency>[^<]*</latency>", f"<latency> {seconds:g} </latency>", text)
        new, count = re.subn(r"(<ffdirect [^>]*>)", rf"\g<1>\n    <latency> {seconds:g} </latency>", text)
        if not count:
            raise ValueError("no forcefield to set the latency of")
        return new
    return edit


def unthreaded(text: str, context: dict) -> str:
    """i-PI's <ffdirect threaded='false'>: no poll thread; the system thread whose request fills the batch evaluates it."""
    new, count = re.subn(r"(<ffdirect [^>]*)threaded='true'", r"\g<1>threaded='false'", text)
    if not count:
        raise ValueError("no threaded <ffdirect> to unthread (the case needs backend direct and several replicas)")
    return new


def with_standin(sleep: bool):
    """Replace the model inside i-PI (direct backend) by bench/standin_pes.py: zero energy and forces,
    answered after the isolated call's time (sleep) or at once. Its call record goes where the
    in-process PES writes its own."""
    def edit(text: str, context: dict) -> str:
        seconds = context["call_ms"] / 1e3 if sleep else 0.0
        parameters = (f"{{seconds: {seconds:.6f}, replicas: {context['replicas']}, "
                      f"stats_file: {context['folder']}/so3k_driver_calls.json}}")
        new, count = re.subn(r"<pes_path>[^<]*</pes_path>", f"<pes_path> {STANDIN_PES} </pes_path>", text)
        new = re.sub(r"<parameters>[^<]*</parameters>", f"<parameters> {parameters} </parameters>", new)
        if not count:
            raise ValueError("no <ffdirect> PES to replace (the case needs backend direct)")
        return new
    return edit


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    what: str
    backend: str = "socket"
    edit: object = None  # input.xml text -> text
    wheel_plumed: bool = False  # PLUMED_KERNEL = the hillclimber wheel's kernel (compiled without optimisation)


CASES = [
    Case("socket", "so3k sample init's socket input (one so3k serve driver, latency 1.5 ms x replicas)"),
    Case("socket-lat20ms", "socket, latency 20 ms", edit=with_latency(0.02)),
    Case("direct", "so3k sample init --backend direct (threaded <ffdirect>, poll latency 1 ms; a short batch "
         "goes after batch_size idle polls)", backend="direct"),
    Case("direct-lat1e-4", "direct, latency 1e-4 s (i-PI's default; the study input before)", backend="direct",
         edit=with_latency(1e-4)),
    Case("direct-lat3ms", "direct, latency 3 ms", backend="direct", edit=with_latency(3e-3)),
    Case("direct-unthreaded", "direct, i-PI's <ffdirect threaded='false'>: no poll thread; the system thread whose request "
         "fills the batch evaluates it (a batch that never fills would wait for ever)", backend="direct",
         edit=unthreaded),
    Case("direct-sleep", "direct, the model replaced by a stand-in that sleeps the isolated call's time and "
         "returns zero forces: i-PI's own cost next to a call of that length", backend="direct",
         edit=with_standin(sleep=True)),
    Case("direct-instant", "direct, a stand-in that answers at once with zero forces: i-PI's floor",
         backend="direct", edit=with_standin(sleep=False)),
    Case("direct-wheel-plumed", "direct, with the hillclimber wheel's PLUMED kernel (built without optimisation; "
         "the other cases use the kernel so3k finds, an optimised one once scripts/build_plumed.sh has run)",
         backend="direct", wheel_plumed=True),
    Case("instant-wheel-plumed", "direct-instant with the wheel's PLUMED kernel", backend="direct",
         edit=with_standin(sleep=False), wheel_plumed=True),
]


def model_call_ms(potential, numbers, positions, replicas: int, calls: int) -> list[float]:
    """Milliseconds of Potential.evaluate on replicas slightly displaced copies of the structure."""
    rng = np.random.default_rng(0)
    times = []
    for _ in range(calls):
        batch = positions[None] + 1e-3 * rng.normal(size=(replicas,) + positions.shape)
        start = time.perf_counter()
        potential.evaluate(np.broadcast_to(numbers, (replicas, len(numbers))), batch)
        times.append(1e3 * (time.perf_counter() - start))
    return times


def run_case(case: Case, model: str, structure: Path, replicas: int, steps: int, metad: str, call_ms: float,
             output_stride: int) -> dict:
    """One study run of case; returns the forcefield's timing record (server.CallCounter.summary())."""
    from so3k_driver.sampling.run import INPUT, prepare, run_study
    from so3k_driver.sampling.settings import MetadSettings, StudySettings, parse_temperatures

    settings = StudySettings(structure=str(structure), model=model, temperatures=parse_temperatures(f"300:450:{replicas}"),
                             steps=steps, metad=MetadSettings(cv=metad), backend=case.backend,
                             output_stride=output_stride)
    with tempfile.TemporaryDirectory(prefix=f"bench-remd-{case.name}-") as folder:
        prepare(folder, settings, force=True)
        if case.edit is not None:
            xml = Path(folder) / INPUT
            context = {"folder": folder, "replicas": replicas, "call_ms": call_ms}
            xml.write_text(case.edit(xml.read_text(), context))
        kernel = None
        if metad != "none":
            import plumed
            from so3k_driver.ipi.executables import find_plumed_kernel

            kernel = str(find_plumed_kernel())
            if case.wheel_plumed:
                # a link: so3k would take PLUMED_KERNEL = the wheel's own path for "unset" and prefer a built one
                kernel = os.path.join(folder, "libplumedKernel.so")
                os.symlink(plumed.BUNDLED_KERNEL_PATH, kernel)
        with mock.patch.dict(os.environ, {"PLUMED_KERNEL": kernel} if kernel else {}):
            started = time.perf_counter()
            run_study(folder, quiet=True)
        record = json.loads((Path(folder) / "so3k_driver_calls.json").read_text())
        record["wall_s"] = time.perf_counter() - started
        record["plumed_kernel"] = kernel
        return record


def main() -> int:
    from so3k_driver.sampling.settings import StudySettings  # light: no JAX

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ala3-xtb")
    parser.add_argument("--structure", type=Path, default=DEFAULT_STRUCTURE, help="starting structure (Å)")
    parser.add_argument("--replicas", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300, help="MD steps per run")
    parser.add_argument("--output-stride", type=int, default=StudySettings.__dataclass_fields__["output_stride"].default,
                        help="MD steps between trajectory frames and property lines (default: so3k sample init's, "
                             "%(default)s; the folding study writes every 250)")
    parser.add_argument("--metad", default="none", help="metadynamics CV of so3k sample init (none: plain REMD)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model-calls", type=int, default=20, help="isolated calls timed before each round")
    parser.add_argument("--cases", default="socket,direct,direct-lat1e-4")
    parser.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    cases = chosen_cases(parser, args, CASES)
    if cases is None:
        return 0

    import ase.io

    from so3k_driver.evaluation.compilation_cache import use_persistent_cache
    from so3k_driver.evaluation.potential import Potential

    use_persistent_cache()
    atoms = ase.io.read(args.structure)
    numbers, positions = atoms.numbers, atoms.positions
    potential = Potential.load(args.model)
    model_call_ms(potential, numbers, positions, args.replicas, 3)  # compile
    results = {case.name: [] for case in cases}
    isolated = []
    for round_index in range(args.rounds):
        call = statistics.median(model_call_ms(potential, numbers, positions, args.replicas, args.model_calls))
        isolated.append(call)
        print(f"round {round_index + 1}/{args.rounds}: isolated {args.replicas} x {len(numbers)}-atom call "
              f"{call:.1f} ms", file=sys.stderr, flush=True)
        for case in cases:
            record = run_case(case, args.model, args.structure, args.replicas, args.steps, args.metad, call,
                              args.output_stride)
            record["isolated_call_ms"] = call
            results[case.name].append(record)
            print(f"  {case.name}: {record['calls_per_step']:.2f} calls/step, {record['ms_per_step']:.1f} ms/step, "
                  f"model {record['model_ms_per_call']:.1f} ms/call, run {record['wall_s']:.0f} s",
                  file=sys.stderr, flush=True)

    print(f"\n{args.replicas}-replica REMD{' + metadynamics (' + args.metad + ')' if args.metad != 'none' else ''} "
          f"of {args.structure.name} ({len(numbers)} atoms), model {args.model}, "
          f"{args.steps} steps (outputs every {args.output_stride}) x {args.rounds} rounds; isolated call {spread(isolated)} ms")
    print(f"{'case':16s} {'calls/step':>20s} {'ms/step':>20s} {'model ms/call':>20s} {'i-PI ms/call':>20s} "
          f"{'step/model-in-run':>20s} {'step/isolated':>20s}")
    for case in cases:
        runs = results[case.name]
        print(f"{case.name:16s} {spread([r['calls_per_step'] for r in runs]):>20s} "
              f"{spread([r['ms_per_step'] for r in runs]):>20s} {spread([r['model_ms_per_call'] for r in runs]):>20s} "
              f"{spread([r['idle_ms_per_call'] for r in runs]):>20s} "
              f"{spread([r['ms_per_step'] / r['model_ms_per_call'] if r['model_ms_per_call'] else None for r in runs]):>20s} "
              f"{spread([r['ms_per_step'] / r['isolated_call_ms'] for r in runs]):>20s}")
    if args.json:
        meta = {"model": args.model, "structure": str(args.structure), "atoms": int(len(numbers)),
                "replicas": args.replicas, "steps": args.steps, "output_stride": args.output_stride, "metad": args.metad, "rounds": args.rounds, "host": platform.node(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cases": {c.name: c.what for c in cases}}
        args.json.write_text(json.dumps({"meta": meta, "isolated_call_ms": isolated, "runs": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
