"""Where one model call's time goes on a GPU, and what XLA's command buffers (CUDA graphs) change (issue #12).

    python bench/gpu_latency.py --out gpu_latency.json [--so3lr DIR] [--repeats 40]

bench/gpu_check.sh measured Potential.evaluate at 3-4 ms for 42 atoms on an H200 (goal < 1 ms) and 5-6 ms
for 162, i.e. the call hardly grows with size: a fixed cost per call. This splits a call into its parts,
each the median of --repeats calls after warm-up:
  plan      host work before the model: checks, neighbour list, padding (Potential._plan)
  upload    the padded batch to the GPU (as Potential sends it, waited for)
  dispatch_and_device  packing, upload and the jitted model (Potential._dispatch, waited for)
  fetch     the outputs back to the host (PendingOutputs.fetch)
  evaluate  the whole Potential.evaluate, for comparison
and counts the kernels XLA launches per call (fusions, custom calls and copies in the optimised HLO's
entry computation). Each XLA setting runs in its own process, since XLA_FLAGS is read when the backend
starts: XLA's defaults and command buffers switched off (2026-12-04 also tried command buffers of every
kind with no minimum graph size: no gain over the defaults). Each case runs with packed transfers (one
buffer per dtype up, one vector down: Potential's default on accelerators) and without (one copy per
array). A setting this XLA does not know aborts its process; that is recorded, not fatal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "so3k_driver" / "data"
SETTINGS = {
    "xla_default": "",
    "command_buffers_off": "--xla_gpu_enable_command_buffer=",
}


def median_ms(function, repeats: int) -> float:
    from bench_model import call_times  # bench/ is on the path when this script runs

    return float(np.median(call_times(function, repeats)) * 1e3)


def kernel_count(compiled) -> dict:
    """Instructions of the optimised entry computation that launch work: fusions, custom calls, copies."""
    text = compiled.as_text()
    entry = text[text.find("ENTRY"):]
    entry = entry[:entry.find("\n}\n")] if "\n}\n" in entry else entry
    lines = [line for line in entry.splitlines() if " = " in line]
    return {"entry_instructions": len(lines),
            "fusions": sum(" fusion(" in line for line in lines),
            "custom_calls": sum(" custom-call(" in line for line in lines),
            "copies": sum(" copy(" in line or " copy-start(" in line for line in lines),
            "while_loops": sum(" while(" in line for line in lines)}


def one_setting(spec_list: list[str], repeats: int) -> dict:
    import ase.io
    import jax

    from so3k_driver.evaluation.potential import Potential

    ala3 = ase.io.read(DATA / "Ac-Ala3-NHMe_ext.xyz")
    ala15 = ase.io.read(DATA / "Ac-Ala15-NHMe_ext.xyz")
    cases = {"1x42": (ala3.numbers, ala3.positions[None]), "1x162": (ala15.numbers, ala15.positions[None]),
             "8x162": (ala15.numbers, np.stack([ala15.positions + 0.01 * k for k in range(8)]))}
    results = {}
    for spec, packed in [(spec, packed) for spec in spec_list for packed in (True, False)]:
        potential = Potential.load(spec, dtype="float32", pack_transfers=packed)
        for name, (numbers, positions) in cases.items():
            if spec != "default" and name == "8x162":
                continue
            numbers_b = np.broadcast_to(numbers, positions.shape[:2])
            plan = potential._plan(numbers_b, positions, None, False, 0.0, 0.0, None, None)
            batch, count = plan.calls[0]
            with potential._precision():
                buffers = potential.call_inputs(batch)[0]
                pending = potential._dispatch(0, batch, False, plan.dense)  # compiles
                jax.block_until_ready(pending.outputs)

                def device_call():
                    return potential._dispatch(0, batch, False, plan.dense)

                row = {
                    "evaluate_ms": median_ms(lambda: potential.evaluate(numbers_b, positions), repeats),
                    "plan_ms": median_ms(lambda: potential._plan(numbers_b, positions, None, False, 0.0, 0.0,
                                                                 None, None), repeats),
                    "upload_ms": median_ms(lambda: jax.block_until_ready(
                        jax.device_put(potential.call_inputs(batch)[0])), repeats),
                    "dispatch_and_device_ms": median_ms(lambda: jax.block_until_ready(device_call().outputs), repeats),
                }
                call_and_fetch = median_ms(lambda: device_call().fetch(), repeats)
                row["fetch_ms"] = call_and_fetch - row["dispatch_and_device_ms"]
                row["uploaded_buffers"] = len(jax.tree.leaves(buffers))
                row.update(kernel_count(potential.lower(batch, False, plan.dense).compile()))
            label = f"{spec.split(':')[0]}/{name}/{'packed' if packed else 'unpacked'}"
            results[label] = row
            print(f"[gpu_latency] {os.environ.get('XLA_FLAGS', '') or 'xla defaults'} {label}: "
                  + " ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                  file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--so3lr", default=None, help="SO3LR parameter directory (adds SO3LR 1x42, 1x162)")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one setting, print JSON
    args = parser.parse_args()
    specs = ["default"] + ([f"so3lr:{args.so3lr}"] if args.so3lr else [])
    if args.one is not None:
        print("RESULT " + json.dumps(one_setting(specs, args.repeats)))
        return
    report = {}
    for name, flags in SETTINGS.items():
        environment = {**os.environ, "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()}
        command = [sys.executable, __file__, "--out", str(args.out), "--repeats", str(args.repeats), "--one", name]
        if args.so3lr:
            command += ["--so3lr", args.so3lr]
        started = time.perf_counter()
        result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=240)
        sys.stderr.write(result.stderr[-3000:])
        lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
        report[name] = ({"xla_flags": flags, "cases": json.loads(lines[-1][7:])} if result.returncode == 0 and lines
                        else {"xla_flags": flags, "error": result.stderr.strip()[-800:]})
        report[name]["wall_s"] = time.perf_counter() - started
        args.out.write_text(json.dumps(report, indent=1))  # after each setting: a timeout keeps what ran
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
