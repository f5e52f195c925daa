"""The one reader of i-PI properties files (``<prefix>.<filename>``, e.g. ``sim.out``).

i-PI starts the file with one header line per property::

    # column   1     --> step : The current simulation time step.
    # column   2     --> time{picosecond} : The elapsed simulation time.
    # cols.    3-5   --> some_vector : ...

then writes one line of numbers per output stride. Names are returned without their unit
(``time{picosecond}`` → ``time``); values are in the unit the input asked for. A run that was
killed can leave the last line cut in the middle: such a line (no newline, or too few numbers)
is not a record and is dropped.
"""

from __future__ import annotations

import os
import re

import numpy as np

HEADER_LINE = re.compile(r"#\s*(?:column|cols\.)\s+(\d+)(?:\s*-\s*(\d+))?\s+-->\s+([^\s{(:]+)")


def parse_header(lines) -> dict[str, slice]:
    """Property name → column slice (0-based) from i-PI's header lines; other lines are ignored."""
    columns = {}
    for line in lines:
        match = HEADER_LINE.match(line)
        if match:
            first = int(match.group(1)) - 1
            last = int(match.group(2)) if match.group(2) else first + 1
            columns.setdefault(match.group(3), slice(first, last))
    return columns


def complete_lines(text: str) -> list[str]:
    """The lines of ``text`` that end with a newline: a last line cut by a kill is not one yet."""
    lines = text.split("\n")
    return lines[:-1]


def complete_rows(path, width: int | None = None, comments: str = "#") -> np.ndarray:
    """(R, width) numbers of a whitespace-separated text file written by a process that may have been
    killed: comment lines, a last line cut mid-line and rows of another width are dropped."""
    with open(path, errors="replace") as handle:
        text = handle.read()
    rows = _complete_records(text, width, comments)
    if width is None:
        width = len(rows[0]) if rows else 0
        rows = [row for row in rows if len(row) == width]
    if not rows:  # nothing written yet (e.g. a replica-exchange log before the first accepted swap)
        return np.zeros((0, width))
    return np.array(rows, dtype=float).reshape(-1, width)


def _complete_records(text: str, width: int | None, comments: str = "#") -> list[list[float]]:
    """Numeric rows of ``text``; a last line without its newline or with missing numbers is dropped."""
    lines = complete_lines(text)
    rows = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith(comments):
            continue
        try:
            row = [float(value) for value in line.split()]
        except ValueError:
            continue
        if width is None or len(row) == width:
            rows.append(row)
    return rows


def read_properties(path) -> dict[str, np.ndarray]:
    """Columns of an i-PI properties file by name: (F,) arrays, or (F, k) for multi-column properties.

    Raises ValueError when the file has no i-PI header (not a properties file).
    """
    with open(path, errors="replace") as handle:
        text = handle.read()
    columns = parse_header(text.splitlines())
    if not columns:
        raise ValueError(f"{path}: no i-PI properties header ('# column N --> name')")
    width = max(s.stop for s in columns.values())
    data = np.array(_complete_records(text, width), dtype=float).reshape(-1, width)
    return {name: data[:, s] if s.stop - s.start > 1 else data[:, s.start] for name, s in columns.items()}


def read_last_record(path, tail_bytes: int = 65536) -> dict[str, float] | None:
    """The last complete line of a properties file as {name: value} (first value of vector properties),
    reading only the header and the file's end; None before the first record."""
    with open(path, "rb") as handle:
        head = handle.read(tail_bytes).decode(errors="replace")
        columns = parse_header(head.splitlines())
        if not columns:
            return None
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - tail_bytes))
        tail = handle.read().decode(errors="replace")
    if size > tail_bytes:
        tail = tail.split("\n", 1)[-1]  # started mid-line
    width = max(s.stop for s in columns.values())
    rows = _complete_records(tail if size > tail_bytes else head, width)
    if not rows:
        return None
    return {name: rows[-1][s.start] for name, s in columns.items()}
