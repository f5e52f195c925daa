"""Progress of a running i-PI, read from its properties output file (``<prefix>.<filename>``)."""

from __future__ import annotations

import dataclasses
import glob
import os
import re

COLUMN = re.compile(r"#\s*column\s+(\d+)(?:-\d+)?\s+-->\s+([A-Za-z_]+)(\{[^}]*\})?")


@dataclasses.dataclass
class Progress:
    step: int
    time_ps: float | None
    temperature_k: float | None
    potential_ev: float | None
    steps_per_s: float | None


class ProgressReader:
    """Follows the newest properties file of this run (for REMD: the first system's)."""

    def __init__(self, workdir: str, outputs, since: float):
        self.pattern = None
        if outputs.properties_file:
            name = f"{outputs.prefix}.{outputs.properties_file}"
            self.patterns = [os.path.join(workdir, name), os.path.join(workdir, f"*_{name}")]
        else:
            self.patterns = []
        self.since = since
        self.first = None  # (step, wall time) of the first line seen

    def _path(self):
        candidates = [p for pattern in self.patterns for p in glob.glob(pattern)
                      if os.path.getmtime(p) >= self.since - 1]
        return sorted(candidates)[0] if candidates else None

    def read(self) -> Progress | None:
        import time

        path = self._path()
        if path is None:
            return None
        columns, last = {}, None
        with open(path, errors="replace") as handle:
            for line in handle:
                if line.startswith("#"):
                    match = COLUMN.match(line)
                    if match:
                        columns[match.group(2)] = int(match.group(1)) - 1
                elif line.strip():
                    last = line
        if last is None or "step" not in columns:
            return None
        values = last.split()

        def value(name):
            index = columns.get(name)
            try:
                return float(values[index]) if index is not None else None
            except (IndexError, ValueError):
                return None

        step = int(value("step") or 0)
        now = time.monotonic()
        if self.first is None:
            self.first = (step, now)
        rate = (step - self.first[0]) / (now - self.first[1]) if now > self.first[1] and step > self.first[0] else None
        return Progress(step, value("time"), value("temperature"), value("potential"), rate)


def format_progress(progress: Progress, total_steps: int | None, width: int = 24) -> str:
    """One line: bar, step, simulated time (ps), temperature (K), potential (eV), steps/s."""
    parts = []
    if total_steps:
        filled = int(width * min(progress.step, total_steps) / total_steps)
        parts.append("[" + "#" * filled + "." * (width - filled) + f"] step {progress.step}/{total_steps}")
    else:
        parts.append(f"step {progress.step}")
    if progress.time_ps is not None:
        parts.append(f"t {progress.time_ps:.4f} ps")
    if progress.temperature_k is not None:
        parts.append(f"T {progress.temperature_k:.1f} K")
    if progress.potential_ev is not None:
        parts.append(f"V {progress.potential_ev:.4f} eV")
    if progress.steps_per_s is not None:
        parts.append(f"{progress.steps_per_s:.1f} steps/s")
    return "  ".join(parts)
