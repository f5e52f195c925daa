"""Readers for i-PI property files and xyz trajectories, and REMD demultiplexing by temperature.

i-PI writes REMD outputs per configuration (system ``T-k``), not per temperature: the column
``ensemble_temperature`` says which temperature a configuration had at each step. Properties and
trajectories must share one stride (as the inputs written by so3k_driver.sampling_inputs do).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def read_properties(path) -> dict[str, np.ndarray]:
    """Columns of an i-PI properties file by name (units stripped from the name: 'time{picosecond}' → 'time')."""
    names = []
    with open(path) as handle:
        for line in handle:
            match = re.match(r"#\s*(?:column|cols\.)\s+[\d-]+\s+-->\s+(\S+)", line)
            if match:
                names.append(match.group(1).split("{")[0].split("(")[0])
            elif not line.startswith("#"):
                break
    data = np.loadtxt(path, comments="#", ndmin=2)
    return {name: data[:, k] for k, name in enumerate(names[: data.shape[1]])}


def read_xyz_frames(path) -> tuple[list[str], np.ndarray]:
    """Symbols and positions (F, N, 3) in the file's units (Å for positions{angstrom})."""
    lines = Path(path).read_text().splitlines()
    symbols, frames, i = None, [], 0
    while i < len(lines) and lines[i].strip():
        n = int(lines[i])
        block = [line.split() for line in lines[i + 2: i + 2 + n]]
        if len(block) < n:
            break  # truncated last frame of a running job
        if symbols is None:
            symbols = [b[0] for b in block]
        frames.append(np.array([[float(x) for x in b[1:4]] for b in block]))
        i += n + 2
    return symbols or [], np.array(frames)


@dataclass
class ReplicaSeries:
    """Frames at one temperature, in time order."""

    temperature: float    # K
    time: np.ndarray      # ps
    positions: np.ndarray  # (F, N, 3) Å
    potential: np.ndarray  # eV
    bias: np.ndarray       # eV


def find_systems(run_dir: Path) -> list[tuple[Path, Path]]:
    """(properties, trajectory) file pairs, one per system; REMD systems are 'T-k_<prefix>.out'."""
    pairs = []
    for out in sorted(run_dir.glob("*.out")):
        trajectories = sorted(run_dir.glob(out.name[:-4] + ".pos_0.xyz"))
        if trajectories:
            pairs.append((out, trajectories[0]))
    if not pairs:
        raise FileNotFoundError(f"no i-PI '*.out' + '*.pos_0.xyz' outputs in {run_dir}")
    return pairs


def demultiplex(run_dir: Path) -> tuple[list[str], list[ReplicaSeries]]:
    """Per-temperature series (sorted by temperature) from the per-configuration outputs."""
    collected: dict[float, list] = {}
    symbols = []
    for properties_file, trajectory_file in find_systems(run_dir):
        props = read_properties(properties_file)
        symbols, frames = read_xyz_frames(trajectory_file)
        count = min(len(frames), len(props["step"]))
        temperatures = props.get("ensemble_temperature", props.get("temperature"))[:count]
        for k in range(count):
            key = round(float(temperatures[k]), 3)
            collected.setdefault(key, []).append(
                (props["time"][k], frames[k], props.get("potential", np.zeros(count))[k],
                 props.get("ensemble_bias", np.zeros(count))[k]))
    series = []
    for temperature in sorted(collected):
        rows = sorted(collected[temperature], key=lambda r: r[0])
        series.append(ReplicaSeries(temperature, np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                                    np.array([r[2] for r in rows]), np.array([r[3] for r in rows])))
    return symbols, series


def exchange_acceptance(run_dir: Path) -> tuple[int, int] | None:
    """(number of exchange records, number of permutation changes) from '<prefix>.remd_idx', or None."""
    files = sorted(run_dir.glob("*.remd_idx"))
    if not files:
        return None
    rows = np.loadtxt(files[0], ndmin=2)
    if len(rows) == 0:
        return 0, 0
    permutations = rows[:, 1:]
    changes = int(np.sum(np.any(permutations[1:] != permutations[:-1], axis=1))) + int(
        np.any(permutations[0] != np.arange(permutations.shape[1])))
    return len(rows), changes
