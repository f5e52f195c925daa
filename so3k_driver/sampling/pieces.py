"""The history of a study's pieces: DIR/pieces.jsonl, one JSON line when a piece starts and one when it ends.

A study runs in pieces (a batch job's time limit, Ctrl-C, a crash). Each ``so3k sample run`` appends
``{"event": "start", ...}`` before i-PI starts and ``{"event": "end", ...}`` when it stops, so the file
says who ran which steps when, with which model, and how fast: a start without its end is a piece
that was killed. Times are UTC (ISO 8601) and Unix seconds, wall times in s, steps are MD steps.
``so3k sample status`` reads it; nothing depends on it to run (a study from before it existed has none).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

PIECES_FILE = "pieces.jsonl"


def utc_stamp(unix_s: float) -> str:
    """A moment as pieces.jsonl writes it (ISO 8601, UTC, whole seconds): 2026-12-07T08:56:12Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_s))


def _now() -> dict:
    now = time.time()
    return {"utc": utc_stamp(now), "unix_s": round(now, 3)}


def _append(folder, record: dict) -> None:
    with open(Path(folder) / PIECES_FILE, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def record_start(folder, first_step: int, total_steps: int, model: str) -> None:
    """A piece begins at first_step (the restart it continues from; 0 for a new study) towards total_steps."""
    _append(folder, {"event": "start", **_now(), "pid": os.getpid(), "host": socket.gethostname(),
                     "first_step": int(first_step), "total_steps": int(total_steps), "model": model})


# all steps asked for; stopped (Ctrl-C, SIGTERM); i-PI or a driver failed
OUTCOMES = ("finished", "interrupted", "failed")


def record_end(folder, first_step: int, last_step: int, wall_s: float, outcome: str) -> None:
    """The piece that began at first_step stopped at last_step (its newest restart) after wall_s seconds;
    outcome is one of OUTCOMES."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    _append(folder, {"event": "end", **_now(), "pid": os.getpid(), "first_step": int(first_step),
                     "last_step": int(last_step), "wall_s": round(float(wall_s), 1), "outcome": outcome})


def read_pieces(folder) -> list[dict]:
    """The pieces of a study, oldest first: each a start record with its end record under "end" (None for
    a piece still running, or one that was killed). A line cut by a kill is skipped."""
    path = Path(folder) / PIECES_FILE
    if not path.is_file():
        return []
    pieces = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("event") == "start":
            pieces.append({**record, "end": None})
        elif record.get("event") == "end" and pieces and pieces[-1]["end"] is None \
                and pieces[-1].get("pid") == record.get("pid"):
            pieces[-1]["end"] = record
    return pieces


def ps_per_hour(steps: int, timestep_fs: float, wall_s: float) -> float | None:
    """Simulated ps per hour of wall time per system; None without steps or time."""
    return steps * timestep_fs * 1e-3 / wall_s * 3600.0 if wall_s > 0 and steps > 0 else None


def running_piece(history: list[dict], lock_held: bool) -> dict | None:
    """The last piece while it still runs: it has no end yet and the study's lock is held. A piece without an
    end whose lock is free was killed before it could log one."""
    return history[-1] if history and history[-1]["end"] is None and lock_held else None


def history_summary(history: list[dict], timestep_fs: float, running: bool = False) -> dict | None:
    """What the logged pieces add up to: their count, how many were killed (a start without an end; the last
    one not, while ``running``), the steps and wall time (s) of the pieces that ended, and from those the
    mean ps per hour per system; first_step: where the first logged piece began (a study begun before this
    log has unlogged steps before it). None without a logged piece."""
    if not history:
        return None
    ended = [p["end"] for p in history if p["end"]]
    open_pieces = sum(p["end"] is None for p in history)
    steps = sum(e["last_step"] - e["first_step"] for e in ended)
    wall_s = sum(e["wall_s"] for e in ended)
    still_running = int(running and history[-1]["end"] is None)
    return {"pieces": len(history), "first_step": history[0]["first_step"], "killed": open_pieces - still_running,
            "ended_steps": steps, "ended_wall_s": wall_s, "ps_per_hour": ps_per_hour(steps, timestep_fs, wall_s)}


__all__ = ["OUTCOMES", "history_summary", "ps_per_hour", "PIECES_FILE", "record_start", "record_end", "read_pieces",
           "running_piece"]
