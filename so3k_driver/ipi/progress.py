"""Progress of a running i-PI, read from its properties output file (``<prefix>.<filename>``);
shown by so3k_driver.progress.Progress."""

from __future__ import annotations

import dataclasses
import glob
import os
import time

from .properties import read_last_record


@dataclasses.dataclass(frozen=True)
class StepProgress:
    """The newest record of a run: MD step, simulated time (ps), temperature (K), potential (eV), rate."""

    step: int
    time_ps: float | None
    temperature_k: float | None
    potential_ev: float | None
    steps_per_s: float | None


class ProgressReader:
    """Follows the properties file of this run (for REMD: the first system's)."""

    def __init__(self, workdir: str, outputs, since: float):
        if outputs.properties_file:
            name = f"{outputs.prefix}.{outputs.properties_file}"
            self.patterns = [os.path.join(workdir, name), os.path.join(workdir, f"*_{name}")]
        else:
            self.patterns = []
        self.since = since
        self.first = None  # (step, monotonic time) of the first record seen

    def _path(self):
        candidates = [p for pattern in self.patterns for p in glob.glob(pattern)
                      if os.path.getmtime(p) >= self.since - 1]
        return sorted(candidates)[0] if candidates else None

    def read(self) -> StepProgress | None:
        path = self._path()
        if path is None:
            return None
        try:
            record = read_last_record(path)
        except OSError:
            return None
        if record is None or "step" not in record:
            return None
        step = int(record["step"])
        now = time.monotonic()
        if self.first is None:
            self.first = (step, now)
        rate = (step - self.first[0]) / (now - self.first[1]) if now > self.first[1] and step > self.first[0] else None
        return StepProgress(step, record.get("time"), record.get("temperature"), record.get("potential"), rate)
