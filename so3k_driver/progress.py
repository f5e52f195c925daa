"""One progress display for training, labelling, ``so3k run`` and sampling studies.

::

    with Progress(total=100, description="training", unit="epoch") as bar:
        for epoch in range(1, 101):
            ...
            bar.update(epoch, loss=loss)        # absolute position; fields shown as "loss 0.0123"
            bar.log("checkpoint written")        # a line printed above the bar

On a terminal (``stream.isatty()``) this is a live ``rich`` bar: description, bar, completed/total,
rate (unit/s), elapsed, remaining and the fields. Anywhere else (a log file, CI) it writes no
carriage returns and no ANSI codes, only whole lines, one every ``plain_interval_s`` seconds and one
at the end::

    training: 40/100 epoch (40%) 2.1 epoch/s elapsed 19 s left 29 s loss 0.0123

``rich`` is imported only when a live bar is drawn, so importing this module stays cheap.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

DEFAULT_PLAIN_INTERVAL_S = 10.0


def format_field(value: Any) -> str:
    """Floats with 4 significant figures; everything else as ``str``."""
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0
                                    and value.dtype.kind == "f"):
        return f"{float(value):.4g}"
    return str(value)


def format_fields(fields: dict[str, Any]) -> str:
    """``{"loss": 0.01234, "frames": 3}`` -> ``"loss 0.01234 frames 3"``."""
    return " ".join(f"{key} {format_field(value)}" for key, value in fields.items())


def format_duration(seconds: float) -> str:
    """``19 s``, ``3 min 05 s``, ``2 h 07 min`` (seconds rounded down)."""
    seconds = int(max(seconds, 0.0))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def format_plain_line(description: str, completed: float, total: float | None, unit: str,
                      elapsed_s: float, rate_per_s: float | None, fields: dict[str, Any]) -> str:
    """One complete progress line, e.g.
    ``training: 40/100 epoch (40%) 2.1 epoch/s elapsed 19 s left 29 s loss 0.0123``.

    ``rate_per_s`` is None before anything has been measured; "left" is shown only with a total
    and a positive rate: left = (total - completed) / rate.
    """
    count = format_field(completed) if isinstance(completed, float) and not completed.is_integer() \
        else str(int(completed))
    parts = [f"{description}:" if description else ""]
    if total:
        percent = 100.0 * min(completed / total, 1.0)
        parts.append(f"{count}/{int(total)} {unit} ({percent:.0f}%)")
    else:
        parts.append(f"{count} {unit}")
    if rate_per_s is not None:
        parts.append(f"{rate_per_s:.3g} {unit}/s")
    parts.append(f"elapsed {format_duration(elapsed_s)}")
    if total and rate_per_s:
        parts.append(f"left {format_duration(max(total - completed, 0) / rate_per_s)}")
    if fields:
        parts.append(format_fields(fields))
    return " ".join(part for part in parts if part)


class Progress:
    """A progress display; use as a context manager (or call ``close()``).

    total: the end position (None when unknown: no percentage or time left); description: a short
    label; unit: what is counted ("epoch", "step"); stream: where to write (default stderr);
    plain_interval_s: seconds between lines when ``stream`` is not a terminal; console: a
    ``rich.console.Console`` to draw on instead of ``stream`` (its ``is_terminal`` picks the mode);
    completed: the starting position (a resumed run), from which the rate is measured.
    """

    def __init__(self, total: float | None = None, description: str = "", unit: str = "it", *,
                 stream: IO[str] | None = None, plain_interval_s: float = DEFAULT_PLAIN_INTERVAL_S,
                 console=None, completed: float = 0):
        if total is not None and total < 0:
            raise ValueError(f"total must be >= 0 or None, got {total!r}")
        if plain_interval_s < 0:
            raise ValueError(f"plain_interval_s must be >= 0, got {plain_interval_s!r}")
        self.total = total
        self.description = description
        self.unit = unit
        self.stream = stream if stream is not None else (console.file if console is not None else sys.stderr)
        self.plain_interval_s = plain_interval_s
        self.completed = completed
        self.fields: dict[str, Any] = {}
        self._start_completed = completed
        self._start_time = time.monotonic()
        self._last_line_time = self._start_time
        self._closed = False
        if console is not None:
            live = console.is_terminal
        else:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty and isatty())
        self._live = _LiveBar(self, console) if live else None

    @property
    def is_live(self) -> bool:
        """True when drawing a live terminal bar, False when writing plain lines."""
        return self._live is not None

    def elapsed_s(self) -> float:
        return time.monotonic() - self._start_time

    def rate_per_s(self) -> float | None:
        """Average (completed - start) / elapsed in unit/s since this display was created."""
        elapsed = self.elapsed_s()
        done = self.completed - self._start_completed
        return done / elapsed if elapsed > 0 and done > 0 else None

    def line(self) -> str:
        """The current state as one plain line (what plain mode writes)."""
        return format_plain_line(self.description, self.completed, self.total, self.unit,
                                 self.elapsed_s(), self.rate_per_s(), self.fields)

    def update(self, completed: float, **fields: Any) -> None:
        """Move to the absolute position ``completed``; ``fields`` are kept until overwritten."""
        self.completed = completed
        self.fields.update(fields)
        if self._live is not None:
            self._live.update()
        elif time.monotonic() - self._last_line_time >= self.plain_interval_s:
            self._write_line()

    def log(self, message: str) -> None:
        """Print ``message`` as its own line above the bar."""
        if self._live is not None:
            self._live.log(message)
        else:
            self.stream.write(f"{message}\n")
            self.stream.flush()

    def close(self) -> None:
        """Draw the final state (plain mode: one last line) and release the terminal. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._live is not None:
            self._live.close()
        else:
            self._write_line()

    def _write_line(self) -> None:
        self._last_line_time = time.monotonic()
        self.stream.write(self.line() + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _LiveBar:
    """The terminal half of :class:`Progress`: a ``rich.progress.Progress`` with one task."""

    def __init__(self, owner: Progress, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress
        from rich.text import Text

        # Rate and time left come from the owner, so the live bar and the plain lines agree.
        class RateColumn(ProgressColumn):
            """Completed units per second since the start, e.g. ``2.1 epoch/s``."""

            def render(self, task):
                rate = owner.rate_per_s()
                return Text("?" if rate is None else f"{rate:.3g} {owner.unit}/s", style="progress.data.speed")

        class TimeLeftColumn(ProgressColumn):
            """Time left at the average rate, e.g. ``left 29 s`` (blank without a total)."""

            def render(self, task):
                rate = owner.rate_per_s()
                if not owner.total or not rate:
                    return Text("")
                left = max(owner.total - owner.completed, 0) / rate
                return Text(f"left {format_duration(left)}", style="progress.remaining")

        self.owner = owner
        console = console if console is not None else Console(file=owner.stream, force_terminal=True)
        self.rich = RichProgress(
            TextColumn("{task.description}", style="progress.description", markup=False), BarColumn(), MofNCompleteColumn(),
            TextColumn(owner.unit), RateColumn(), TimeElapsedColumn(), TimeLeftColumn(),
            TextColumn("{task.fields[text]}", markup=False), console=console, transient=False)
        self.task = self.rich.add_task(owner.description, total=owner.total, completed=owner.completed,
                                       text="")
        self.rich.start()

    def update(self) -> None:
        self.rich.update(self.task, completed=self.owner.completed, text=format_fields(self.owner.fields))

    def log(self, message: str) -> None:
        # markup=False, highlight=False: print the message as given, brackets included.
        self.rich.console.print(message, markup=False, highlight=False)

    def close(self) -> None:
        self.update()
        self.rich.stop()
