"""Training throughput: structures per second of one optimiser step, by batch size and model, in one run.

Builds each case's ``Trainer`` on the first frames of a labelled file, compiles its step, then times
the cases in alternating rounds (the machine is noisy: compare the ratios, not the seconds)::

    python bench/bench_train_step.py runs/student_v10_data/v8_train.extxyz --batch-sizes 2 4 8 \
        --models 3x48_lr 3x48_local --rounds 5 --steps 10 --json OUT.json

Prints per case the median seconds per step, structures per second, and that throughput relative to
the first case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax

from so3k_driver.training.batching import batch_order, make_batch
from so3k_driver.training.settings import TrainSettings
from so3k_driver.training.trainer import Trainer

_COMMON = {"num_heads": 4, "num_radial": 32, "degrees": [1, 2], "zbl_repulsion": True}
MODELS = {
    "3x48_lr": {"num_layers": 3, "num_features": 48, "energy_regression_dim": 48, "cutoff": 4.5,
                "electrostatics": True, "dispersion": True, **_COMMON},
    "3x48_local": {"num_layers": 3, "num_features": 48, "energy_regression_dim": 48, "cutoff": 4.5,
                   "electrostatics": False, "dispersion": False, **_COMMON},
    "2x48_lr": {"num_layers": 2, "num_features": 48, "energy_regression_dim": 48, "cutoff": 5.0,
                "electrostatics": True, "dispersion": True, **_COMMON},
}


def build_case(data: str, frames: int, model: str, batch_size: int):
    lr = MODELS[model]["electrostatics"]
    settings = TrainSettings.from_dict({
        "data": data, "num_train": frames, "num_valid": 0, "batch_size": batch_size, "model": MODELS[model],
        "lr_cutoff": None, "learning_rate": 1e-3, "charge_weight": 10.0 if lr else 0.0,
        "hirshfeld_weight": 1.0 if lr else 0.0, "progress": False, "plot": False, "output_dir": "/tmp/unused"})
    trainer = Trainer(settings, log=lambda *_: None)
    chunks = batch_order(len(trainer.train_data), batch_size, seed=0)
    batches = [make_batch(trainer.train_data, trainer.p.train_pairs, c, trainer.p.capacities) for c in chunks]
    state = trainer.initial_state()
    state, _ = trainer._train_step(state, *batches[0])  # compile
    jax.block_until_ready(state)
    return trainer, batches, state


def time_steps(trainer, batches, state, steps: int):
    start = time.perf_counter()
    for i in range(steps):
        state, metrics = trainer._train_step(state, *batches[i % len(batches)])
        float(metrics["loss"])  # as the trainer does: one host sync per step
    return (time.perf_counter() - start) / steps, state


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help="labelled extxyz (eV, eV/Å), e.g. v8's training data")
    parser.add_argument("--frames", type=int, default=48, help="frames to build batches from (default 48; the file needs more)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--models", nargs="+", default=["3x48_lr"], choices=sorted(MODELS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per case per round")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    cases = {}
    for model in args.models:
        for b in args.batch_sizes:
            t0 = time.perf_counter()
            cases[(model, b)] = build_case(args.data, args.frames, model, b)
            print(f"{model} batch {b}: built and compiled in {time.perf_counter() - t0:.0f} s", flush=True)
    times = {key: [] for key in cases}
    for r in range(args.rounds):
        for key, (trainer, batches, state) in cases.items():
            seconds, state = time_steps(trainer, batches, state, args.steps)
            cases[key] = (trainer, batches, state)
            times[key].append(seconds)
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    first = None
    rows = []
    print(f"{'model':<12} {'batch':>5} {'s/step (median, min-max)':>28} {'structures/s':>13} {'relative':>9}")
    for (model, b), t in times.items():
        median = statistics.median(t)
        rate = b / median
        first = first or rate
        rows.append({"model": model, "batch_size": b, "seconds_per_step": t, "median_s": median,
                     "structures_per_s": rate, "relative_to_first": rate / first})
        print(f"{model:<12} {b:>5} {median:>12.4f} ({min(t):.4f}-{max(t):.4f}) {rate:>13.1f} {rate / first:>9.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"data": args.data, "frames": args.frames, "rounds": args.rounds, "steps": args.steps,
                       "devices": [str(d) for d in jax.devices()], "cases": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
