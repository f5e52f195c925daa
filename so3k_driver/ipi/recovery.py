"""Checkpoints and outputs of a run that is resumed: which checkpoint to continue from, and cutting
the outputs back to it so that the continuation neither repeats nor skips a step.

Measured with i-PI 3.3.1: a checkpoint with ``<step> S </step>`` holds the state of properties
record S, and a run resumed from it writes records S+1, S+2, ... So every i-PI output (properties,
trajectories) keeps its records up to step S; PLUMED's HILLS and COLVAR, whose time column counts
PLUMED calls, keep their lines up to the checkpoint's ``<plumed_step>`` (PLUMED is told to restart
and appends: its HILLS are extended, not started again). Lines are only ever dropped from the end.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re

from . import ipi_xml
from .properties import parse_header

CLEAN_STOP_FILE = "RESTART"  # what i-PI writes on a soft exit (Ctrl-C, SIGTERM, end of run)
XYZ_STEP = re.compile(r"\bStep:\s*(\d+)")
PLUMED_FILE = re.compile(r"\bFILE=(\S+)")
PLUMED_WALKER = re.compile(r"\bWALKERS_ID=(\d+)")  # on a METAD line written in one line, as plumed_inputs does
DEFAULT_OUTPUT_NAMES = {"properties": "out", "trajectory": "traj"}  # i-PI's defaults for filename=


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    path: str
    step: int  # the <step> in the file: the last properties record it covers


def checkpoint_pattern(workdir: str, prefix: str) -> str:
    """Numbered checkpoints of i-PI's <checkpoint overwrite='false'>: PREFIX.restart_N (N counts writes)."""
    return os.path.join(workdir, f"{glob.escape(prefix)}.restart_*")


def numbered_checkpoints(workdir: str, prefix: str) -> list[Checkpoint]:
    """The readable numbered checkpoints, oldest step first (a file cut by a kill is skipped)."""
    found = []
    for path in glob.glob(checkpoint_pattern(workdir, prefix)):
        if not re.fullmatch(r".*\.restart_\d+", path):
            continue
        try:
            found.append(Checkpoint(path, ipi_xml.step(path)))
        except (ipi_xml.IpiInputError, OSError):
            continue
    return sorted(found, key=lambda c: (c.step, os.path.getmtime(c.path)))


def rotate_checkpoints(workdir: str, prefix: str, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` numbered checkpoints; returns the deleted paths."""
    checkpoints = numbered_checkpoints(workdir, prefix)
    doomed = [c.path for c in checkpoints[:-keep]] if keep > 0 else []
    for path in doomed:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return doomed


def all_checkpoints(workdir: str, prefix: str) -> list[Checkpoint]:
    """RESTART, PREFIX.restart and the numbered checkpoints that can be read, oldest step first."""
    found = numbered_checkpoints(workdir, prefix)
    for name in (CLEAN_STOP_FILE, f"{prefix}.restart"):
        path = os.path.join(workdir, name)
        if os.path.isfile(path):
            try:
                found.append(Checkpoint(path, ipi_xml.step(path)))
            except (ipi_xml.IpiInputError, OSError):
                pass
    return sorted(found, key=lambda c: (c.step, os.path.getmtime(c.path)))


def latest_checkpoint(workdir: str, prefix: str, before_step: int | None = None) -> Checkpoint | None:
    """The checkpoint at the highest step (below before_step when given); None if there is none."""
    usable = [c for c in all_checkpoints(workdir, prefix) if before_step is None or c.step < before_step]
    return usable[-1] if usable else None


# ----- cutting outputs back to a checkpoint ------------------------------------------------------

def _rewrite_kept_prefix(path: str, keep_bytes: int) -> bool:
    if keep_bytes >= os.path.getsize(path):
        return False
    with open(path, "r+b") as handle:
        handle.truncate(keep_bytes)
    return True


def truncate_properties(path: str, step: int) -> bool:
    """Keep the header and the records with step <= ``step`` (and nothing cut mid-line)."""
    with open(path, "rb") as handle:
        data = handle.read()
    text = data.decode(errors="replace")
    columns = parse_header(text.splitlines())
    if "step" not in columns:
        return False
    column = columns["step"].start
    kept = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        fields = line.split()
        if line.lstrip().startswith(b"#") or not fields:
            kept += len(line)
            continue
        try:
            if float(fields[column]) > step:
                break
        except (ValueError, IndexError):
            break
        kept += len(line)
    return _rewrite_kept_prefix(path, kept)


def truncate_xyz(path: str, step: int) -> bool:
    """Keep the frames of an i-PI xyz trajectory whose comment says ``Step: k`` with k <= ``step``."""
    with open(path, "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    kept, index = 0, 0
    while index < len(lines):
        try:
            natoms = int(lines[index].split()[0])
        except (ValueError, IndexError):
            break
        frame = lines[index:index + natoms + 2]
        match = XYZ_STEP.search(frame[1].decode(errors="replace")) if len(frame) > 1 else None
        if len(frame) < natoms + 2 or not frame[-1].endswith(b"\n") or match is None or int(match.group(1)) > step:
            break
        kept += sum(len(line) for line in frame)
        index += natoms + 2
    return _rewrite_kept_prefix(path, kept)


def truncate_extras(path: str, step: int) -> bool:
    """Keep the records of an i-PI extras trajectory (a '#EXTRAS(...)# Step: k' header and its data
    lines) with k <= ``step``; a record cut by a kill is dropped."""
    with open(path, "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    kept = record = 0
    for line in lines:
        if not line.endswith(b"\n"):
            break
        if line.lstrip().startswith(b"#"):  # a header ends the record before it
            kept, record = kept + record, 0
            match = XYZ_STEP.search(line.decode(errors="replace"))
            if match is None or int(match.group(1)) > step:
                break
        record += len(line)
    else:
        kept += record
    return _rewrite_kept_prefix(path, kept)


def truncate_timed_lines(path: str, last_time: float) -> bool:
    """PLUMED files (HILLS, COLVAR): keep comment lines and lines whose first column is <= last_time."""
    with open(path, "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    kept = 0
    for line in lines:
        if not line.endswith(b"\n"):
            break
        if not line.lstrip().startswith(b"#") and line.strip():
            try:
                if float(line.split()[0]) > last_time + 1e-9:
                    break
            except ValueError:
                break
        kept += len(line)
    return _rewrite_kept_prefix(path, kept)


def truncate_swaps(path: str, step: int) -> bool:
    """Replica-exchange log (PREFIX.remd_idx): keep the lines of exchanges made before a checkpoint at
    ``step``. i-PI writes a line with its loop index k (0-based), whose properties record is k + 1, so
    a checkpoint with <step> S covers the exchanges with k < S and the resumed run writes k >= S."""
    return truncate_timed_lines(path, step - 1)  # the same rule on the first column, integers here


def swap_file(root, workdir: str, prefix: str) -> str | None:
    """The replica-exchange log of a checkpoint's <smotion mode='remd'>, or None without one."""
    for smotion in root.iter("smotion"):
        if smotion.get("mode") == "remd":
            name = (smotion.findtext("remd/swapfile") or "").strip() or "remd_idx"  # i-PI's default
            return os.path.join(workdir, f"{prefix}.{name}")
    return None


def plumed_outputs(root, workdir: str) -> list[tuple[str, int]]:
    """(file, plumed_step) for each FILE= written by the <ffplumed> inputs of a checkpoint."""
    found = []
    for ffplumed in root.iter("ffplumed"):
        step_text = ffplumed.findtext("plumed_step")
        plumed_step = int(float(step_text)) if step_text and step_text.strip() else 0
        source = (ffplumed.findtext("plumed_dat") or "").strip()
        if not source or not os.path.isfile(source):
            continue
        with open(source, errors="replace") as handle:
            for line in handle.read().splitlines():
                # a walker of PLUMED's multiple walkers writes its hills to FILE.<WALKERS_ID>
                walker = PLUMED_WALKER.search(line)
                for match in PLUMED_FILE.finditer(line.split("#")[0]):
                    name = match.group(1) + (f".{walker.group(1)}" if walker else "")
                    found.append((os.path.join(workdir, name), plumed_step))
    return found


def truncate_outputs(workdir: str, checkpoint: str) -> list[str]:
    """Cut every output of the run in ``workdir`` back to the state saved in ``checkpoint``.

    Properties files and xyz trajectories keep records up to the checkpoint's step, the replica-exchange
    log the exchanges before it; PLUMED files named by its <ffplumed> inputs keep lines up to its
    <plumed_step>. Returns the files shortened.
    """
    root = ipi_xml.load(checkpoint).getroot()
    settings = ipi_xml.output_settings(root)
    step = settings.start_step
    changed = []
    output = root.find("output")
    prefix = settings.prefix
    for element in (list(output) if output is not None else []):
        if element.tag not in DEFAULT_OUTPUT_NAMES:
            continue
        name = element.get("filename") or DEFAULT_OUTPUT_NAMES[element.tag]  # checkpoints omit defaults
        for path in glob.glob(os.path.join(workdir, f"*{glob.escape(prefix)}.{glob.escape(name)}*")):
            if element.tag == "properties" and truncate_properties(path, step):
                changed.append(path)
            elif element.tag == "trajectory" and (element.text or "").strip().startswith("extras"):
                if truncate_extras(path, step):  # i-PI writes extras in their own layout, whatever format says
                    changed.append(path)
            elif element.tag == "trajectory" and element.get("format", "xyz") == "xyz" and truncate_xyz(path, step):
                changed.append(path)
    swaps = swap_file(root, workdir, prefix)
    if swaps is not None and os.path.isfile(swaps) and truncate_swaps(swaps, step):
        changed.append(swaps)
    for path, plumed_step in plumed_outputs(root, workdir):
        if os.path.isfile(path) and truncate_timed_lines(path, plumed_step):
            changed.append(path)
    return changed
