"""A dependency-free progress bar with live metrics (written to stderr, one line, redrawn)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    """``bar.update(n, **metrics)``; ``bar.close()``. Redraws at most every ``interval`` seconds."""

    def __init__(self, total: int, label: str = "", width: int = 24, interval: float = 0.5, stream=None):
        self.total = max(int(total), 1)
        self.label = label
        self.width = width
        self.interval = interval
        self.stream = stream or sys.stderr
        self.count = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self.metrics: dict[str, float] = {}

    def update(self, n: int = 1, **metrics) -> None:
        self.count += n
        self.metrics.update(metrics)
        now = time.perf_counter()
        if now - self._last_draw >= self.interval or self.count >= self.total:
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = min(self.count / self.total, 1.0)
        filled = int(fraction * self.width)
        elapsed = now - self.start
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        text = " ".join(f"{k} {v:.4g}" for k, v in self.metrics.items())
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{self.count}/{self.total} {elapsed:.0f}s<{eta:.0f}s {text}\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        self._draw(time.perf_counter())
        self.stream.write("\n")
        self.stream.flush()
