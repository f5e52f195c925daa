"""A stand-in for the model inside i-PI (``<ffdirect><pes>custom</pes>``): zero energy and forces after
sleeping a fixed time per batch, so that a run measures what i-PI itself costs per step for an input.
Used by ``bench_remd_step.py`` (cases direct-instant and direct-sleep). A benchmark tool, not a test.

``<parameters>{seconds: 0.107, replicas: 8, stats_file: /path/standin_calls.json}</parameters>``:
seconds slept per batch call (0: answer at once); replicas: structures per MD step; stats_file: written
when i-PI exits, with the keys of the driver's ``so3k_driver_calls.json`` that the benchmark reads
(calls, calls_per_step, ms_per_step, model_ms_per_call, idle_ms_per_call), from call 10 on.
"""

from __future__ import annotations

import atexit
import json
import statistics
import time

from ipi.pes.dummy import Dummy_driver

__DRIVER_NAME__ = "so3k_standin"
__DRIVER_CLASS__ = "StandInPES"

SKIPPED_CALLS = 10  # start-up: i-PI's first steps and outputs


class StandInPES(Dummy_driver):
    def __init__(self, seconds="0", replicas="1", stats_file=None, *args, **kwargs):
        self.seconds = float(seconds)
        self.replicas = int(replicas)
        self.stats_file = stats_file
        self.starts: list[float] = []
        self.structures = 0
        if stats_file:
            from ipi.utils.softexit import softexit

            softexit.register_function(self.write_stats)
            atexit.register(self.write_stats)
        super().__init__(*args, **kwargs)

    def compute(self, cell, pos):
        self.starts.append(time.perf_counter())
        self.structures += len(pos) if isinstance(pos, list) else 1
        if self.seconds > 0:
            time.sleep(self.seconds)
        return super().compute(cell, pos)

    def write_stats(self):
        intervals = [b - a for a, b in zip(self.starts[SKIPPED_CALLS:], self.starts[SKIPPED_CALLS + 1:])]
        if not intervals or not self.stats_file:
            return
        steps = self.structures / self.replicas
        calls_per_step = len(self.starts) / steps
        ms_per_call = 1e3 * statistics.median(intervals)
        record = {"calls": len(self.starts), "calls_per_step": calls_per_step,
                  "ms_per_step": ms_per_call * calls_per_step, "model_ms_per_call": 1e3 * self.seconds,
                  "idle_ms_per_call": ms_per_call - 1e3 * self.seconds}
        with open(self.stats_file, "w") as handle:
            json.dump(record, handle, indent=1)
