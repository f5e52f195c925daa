"""Benchmark: train SO3krates on 1,000 rMD17 aspirin frames on the CPU and report the force MAE
reached on the 200 held-out frames and the CPU time used.

Run from the repository root:  .venv/bin/python bench/train_aspirin.py [--time-limit SECONDS]
Writes bench/results/aspirin/{model.so3k, metrics.jsonl, learning_curve.png, result.json}.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from so3k_driver.training.settings import TrainSettings, read_settings_file
from so3k_driver.training.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(Path(__file__).with_name("aspirin.yaml")))
    parser.add_argument("--time-limit", type=float, default=None, help="wall-time limit in s (default: config)")
    args = parser.parse_args()
    raw = read_settings_file(args.config)
    if args.time_limit is not None:
        raw["time_limit_s"] = args.time_limit
    settings = TrainSettings.from_dict(raw)
    wall = time.perf_counter()
    result = train(settings)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "force_mae_meV_per_A": 1e3 * result["validation"]["forces_mae_eV_per_A"],
        "force_rmse_meV_per_A": 1e3 * result["validation"]["forces_rmse_eV_per_A"],
        "energy_mae_meV": 1e3 * result["validation"]["energy_mae_eV"],
        "cpu_time_s": usage.ru_utime + usage.ru_stime,
        "wall_time_s": time.perf_counter() - wall,
        "epochs": int(result["state"]["epoch"]), "steps": int(result["state"]["step"]),
    }
    Path(settings.output_dir, "result.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
