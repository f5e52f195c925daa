"""Where a study stands, read from its folder without changing anything: ``so3k sample status DIR``.

Whether a run holds the folder now (study_lock.py), the step reached and the simulated time per system,
the newest restart a resumed run would continue from, the speed in ps per hour per system (of the
running piece, startup included, and of the last finished one, from pieces.jsonl) with the time left at
that speed, where a step's time goes (the model's calls against the rest: i-PI, PLUMED, outputs; from the
driver's counts, ``so3k_driver_calls.json``), per temperature (or walker) the COLVAR's last value and its
range over the run, and for a capped peptide each trajectory's newest frame (helical residues, i→i+4
H-bonds, end-to-end distance): for a folding study, how close to the helix it has come and which
configuration is getting there. Safe to call while the study runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from . import peptide, pieces as study_pieces
from .analysis import ipi_outputs, plumed_files
from .inputs import DEFAULT_INIT_FILE
from .plumed_inputs import COLVAR_COLUMNS, colvar_unit
from .run import describe, latest_restart
from .settings import StudySettings
from .study_lock import holder
from ..ipi import ipi_xml
from ..ipi.properties import read_last_record
from ..ipi.run_setup import STATS_FILE_PATTERN

# A running piece's speed counts once it has run this long: before, model compilation dominates it
RUNNING_SPEED_AFTER_S = 600.0
HIDDEN_COLUMNS = ("time", "metad.rbias")  # the step, and the reweighting bias (an analysis quantity)


def study_status(folder) -> dict:
    """The status record of a study folder (JSON-serialisable; units in the key names: ps, s, K)."""
    folder = Path(folder)
    settings = StudySettings.load(folder)
    dt_ps = settings.timestep_fs * 1e-3
    restart = latest_restart(folder)
    restart_step = ipi_xml.step(restart) if restart else 0
    step = max(restart_step, _written_step(folder))
    running_by = holder(folder)
    history = study_pieces.read_pieces(folder)
    now = time.time()
    record = {
        "folder": str(folder), "run": describe(settings, folder), "model": settings.model, "dtype": settings.dtype,
        "backend": settings.backend, "timestep_fs": settings.timestep_fs, "running_by": running_by,
        "step": step, "total_steps": settings.steps, "ps_per_system": step * dt_ps,
        "total_ps_per_system": settings.steps * dt_ps,
        "restart": restart.name if restart else None, "restart_step": restart_step,
    }
    current = study_pieces.running_piece(history, lock_held=running_by is not None)
    logged = study_pieces.history_summary(history, settings.timestep_fs, running=current is not None)
    record.update(pieces=logged["pieces"] if logged else 0, pieces_killed=logged["killed"] if logged else 0,
                  wall_s=logged["ended_wall_s"] if logged else 0.0)
    if current is not None:
        elapsed = now - current["unix_s"]
        record["wall_s"] += elapsed
        record["running_piece"] = {"started_utc": current["utc"], "first_step": current["first_step"],
                                   "elapsed_s": elapsed,
                                   "ps_per_hour": study_pieces.ps_per_hour(step - current["first_step"],
                                                                           settings.timestep_fs, elapsed)}
    finished = [p for p in history if p["end"] and p["end"]["last_step"] > p["end"]["first_step"]]
    if finished:
        end = finished[-1]["end"]
        record["last_finished_piece"] = {"first_step": end["first_step"], "last_step": end["last_step"],
                                         "wall_s": end["wall_s"], "ended_utc": end["utc"],
                                         "ps_per_hour": study_pieces.ps_per_hour(
                                             end["last_step"] - end["first_step"], settings.timestep_fs, end["wall_s"])}
    speed = _best_speed(record)
    if speed:
        record["hours_left"] = (settings.steps - step) * dt_ps / speed
    record["step_costs"] = step_costs(folder, current["unix_s"] if current is not None else None)
    record["colvar"] = _colvar_ranges(folder, settings)
    record["newest_frames"] = newest_frames(folder)
    return record


def step_costs(folder, piece_started_unix_s: float | None = None) -> list[dict]:
    """Per model force field, where an MD step's time went, from the counts the driver writes
    (``so3k_driver*_calls.json``: the direct backend every minute and at the end, a socket driver at the end).

    Each row: file, written_unix_s, this_piece (written since the running piece started), calls_per_step,
    ms_per_step, model_ms_per_call, rest_ms_per_step (the step less the model's calls: i-PI's own stepping,
    PLUMED, outputs, waiting) and step_over_model (ms_per_step over the model's time per step). Steady-state
    figures of one run (calls that compiled left out). A file without timed calls or steps is skipped.
    """
    rows = []
    for path in sorted(Path(folder).glob(STATS_FILE_PATTERN)):
        try:
            counts = json.loads(path.read_text())
            written = path.stat().st_mtime
        except (OSError, ValueError):  # being replaced, or not ours
            continue
        per_step, model = counts.get("ms_per_step"), counts.get("model_ms_per_call")
        calls = counts.get("calls_per_step")
        if not (per_step and model and calls):
            continue
        model_per_step = model * calls
        rows.append({"file": path.name, "written_unix_s": written,
                     "this_piece": piece_started_unix_s is not None and written >= piece_started_unix_s,
                     "calls_per_step": calls, "ms_per_step": per_step, "model_ms_per_call": model,
                     "rest_ms_per_step": per_step - model_per_step, "step_over_model": per_step / model_per_step})
    return rows


def _written_step(folder: Path) -> int:
    """The newest step in the first system's properties file (0 before any)."""
    files = sorted(folder.glob("*.out"))
    last = read_last_record(files[0]) if files else None
    return int(last["step"]) if last and "step" in last else 0


def _best_speed(record: dict) -> float | None:
    """ps/h to plan with: the running piece's once it is past its startup, else the last finished piece's."""
    running = record.get("running_piece")
    if running and running["ps_per_hour"] and running["elapsed_s"] >= RUNNING_SPEED_AFTER_S:
        return running["ps_per_hour"]
    finished = record.get("last_finished_piece")
    return finished["ps_per_hour"] if finished else None


def newest_frames(folder) -> list[dict]:
    """For a capped peptide, per i-PI trajectory (in REMD one configuration through all temperatures) its
    newest frame: step, residues with helical φ/ψ (count and a map, H per helical residue), formed i→i+4
    backbone H-bonds (α-helix) and i→i+3 (3₁₀-helix, whose φ/ψ also count as helical), and the end-to-end
    distance (Å). Reads only the ends of the trajectories. Empty for a
    structure that is not a capped peptide, or before the first frame."""
    folder = Path(folder)
    start = folder / DEFAULT_INIT_FILE
    try:
        symbols, frames = ipi_outputs.read_xyz_frames(start)
        backbone = peptide.find_backbone(ipi_outputs.atomic_numbers_of(symbols), frames[0])
        systems = ipi_outputs.find_systems(folder)
    except (OSError, ValueError, KeyError, IndexError):  # no start file, not a peptide, no outputs yet
        return []
    rows = []
    for properties, trajectory in systems:
        newest = ipi_outputs.read_last_xyz_frame(trajectory, len(symbols))
        if newest is not None:
            step, positions = newest
            rows.append({"system": ipi_outputs.system_name(properties), "step": step,
                         **peptide.helix_shape(positions, backbone)})
    return rows


def _colvar_ranges(folder: Path, settings: StudySettings) -> list[dict]:
    """Per COLVAR file: its label, temperature (K), last step, and per column the last value, min and max."""
    rows = []
    for k, path in enumerate(plumed_files.temperature_files(folder, "COLVAR")):
        try:
            columns = plumed_files.read_plumed(path)
        except ValueError:  # no FIELDS header yet
            columns = {}
        if not columns or not len(columns.get("time", ())):
            continue
        label = path.suffix[1:] if path.suffix[1:2] in ("T", "W") else ""
        replica = label.startswith("T") and label[1:].isdigit() and int(label[1:]) < len(settings.temperatures)
        rows.append({"file": path.name, "label": label or path.name,
                     "temperature_K": settings.temperatures[int(label[1:])] if replica else settings.temperatures[0],
                     "step": int(columns["time"][-1]),
                     "columns": {name: {"last": float(values[-1]), "min": float(np.min(values)),
                                        "max": float(np.max(values)), "unit": colvar_unit(name)}
                                 for name, values in columns.items() if name not in HIDDEN_COLUMNS}})
    return rows


def _hours(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def status_lines(record: dict) -> list[str]:
    """The status record as the lines ``so3k sample status`` prints."""
    model = record["model"] + (f" ({record['dtype']})" if record["dtype"] else "")
    lines = [f"{record['folder']}: {record['run']}, {model}, {record['backend']} backend",
             f"running: {record['running_by']}" if record["running_by"] else "not running"]
    fraction = record["step"] / record["total_steps"] if record["total_steps"] else 0.0
    lines.append(f"step {record['step']:,} of {record['total_steps']:,} ({100 * fraction:.1f} %): "
                 f"{record['ps_per_system']:.2f} of {record['total_ps_per_system']:.2f} ps per system, "
                 f"{record['timestep_fs']:g} fs steps; "
                 + (f"newest restart: step {record['restart_step']:,} ({record['restart']})" if record["restart"]
                    else "no restart yet"))
    speeds = []
    running = record.get("running_piece")
    if running:
        rate = f"{running['ps_per_hour']:.1f} ps/h per system" if running["ps_per_hour"] else "no step yet"
        speeds.append(f"this piece {rate} since {running['started_utc']} (step {running['first_step']:,}, "
                      f"startup included)")
    finished = record.get("last_finished_piece")
    if finished:
        speeds.append(f"last finished piece {finished['ps_per_hour']:.1f} ps/h (steps {finished['first_step']:,} → "
                      f"{finished['last_step']:,} in {_hours(finished['wall_s'] / 3600)}, ended {finished['ended_utc']})")
    if speeds:
        lines.append("speed: " + "; ".join(speeds))
    if "hours_left" in record:
        lines.append(f"left: {record['total_steps'] - record['step']:,} steps, ~{_hours(record['hours_left'])} "
                     "at that speed")
    for cost in record.get("step_costs", []):
        when = ("this piece" if cost["this_piece"]
                else f"the last run, written {study_pieces.utc_stamp(cost['written_unix_s'])}")
        lines.append(f"time per step: {cost['ms_per_step']:.1f} ms = model {cost['model_ms_per_call']:.1f} ms per "
                     f"call × {cost['calls_per_step']:.2f} calls + {cost['rest_ms_per_step']:.1f} ms of i-PI, PLUMED "
                     f"and outputs ({cost['step_over_model']:.2f} × the model; {cost['file']}, {when})")
    if record["pieces"]:
        killed = f" ({record['pieces_killed']} ended without a record: killed)" if record["pieces_killed"] else ""
        lines.append(f"pieces: {record['pieces']}{killed}, {_hours(record['wall_s'] / 3600)} of wall time "
                     f"(pieces.jsonl)")
    if record["colvar"]:
        names = list(record["colvar"][0]["columns"])
        legend = [f"{n}: {COLVAR_COLUMNS[n][0]}" for n in names if n in COLVAR_COLUMNS]
        lines += ["", "COLVAR: last value (min–max over the run)" + (f"; {', '.join(legend)}" if legend else "")]
        table = [["", "T (K)", "step"] + [_heading(n, record["colvar"][0]["columns"][n]["unit"]) for n in names]]
        for row in record["colvar"]:
            cells = [row["label"], f"{row['temperature_K']:g}", f"{row['step']:,}"]
            for name in names:
                value = row["columns"].get(name)
                cells.append(f"{value['last']:.2f} ({value['min']:.2f}–{value['max']:.2f})" if value else "–")
            table.append(cells)
        lines += _aligned(table)
    if record.get("newest_frames"):
        follows = "one configuration through the temperatures" if record["run"].startswith("REMD") else "one system"
        lines += ["", f"Newest frame of each trajectory ({follows}; H: a residue with helical φ/ψ):"]
        table = [["", "step", "helical residues", "", "α H-bonds i→i+4", "3₁₀ H-bonds i→i+3", "end to end (Å)"]]
        for row in record["newest_frames"]:
            step = f"{row['step']:,}" if row["step"] is not None else "–"
            table.append([row["system"], step, f"{row['helical_residues']}/{row['residues']}", row["helix_map"],
                          f"{row['alpha_hbonds']}/{row['alpha_hbonds_possible']}",
                          f"{row['three_ten_hbonds']}/{row['three_ten_hbonds_possible']}", f"{row['end_to_end_A']:.1f}"])
        lines += _aligned(table)
    return lines


def _aligned(table: list[list[str]]) -> list[str]:
    widths = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
    return ["  " + "  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in table]


def _heading(name: str, unit: str) -> str:
    return f"{name} ({unit})" if unit else name


__all__ = ["study_status", "status_lines"]
