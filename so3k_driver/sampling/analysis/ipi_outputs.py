"""Readers for i-PI xyz trajectories, and REMD demultiplexing by temperature (properties files are
read by so3k_driver.ipi.properties.read_properties, re-exported here).

i-PI writes REMD outputs per configuration (system ``T-k``), not per temperature: the column
``ensemble_temperature`` says which temperature a configuration had at each step. Properties and
trajectories must share one stride (as the inputs written by so3k_driver.sampling.inputs do).

A configuration that breaks apart (a machine-learned potential outside its training data can let
a molecule explode) is reported as a ``Breakage`` and its frames from then on are left out of
the per-temperature series: they would otherwise pass for sampling at whatever temperature the
broken configuration was exchanged to.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...evaluation import topology
from ...evaluation.topology import BREAKAGE_BOND_SCALE, BondGuard
from ...ipi.properties import complete_lines, read_properties


def read_xyz_frames(path) -> tuple[list[str], np.ndarray]:
    """Symbols and positions (F, N, 3) in the file's units (Å for positions{angstrom})."""
    lines = complete_lines(Path(path).read_text(errors="replace"))  # a killed run can leave its last line cut
    symbols, frames, i = None, [], 0
    while i < len(lines) and lines[i].strip():
        n = int(lines[i])
        block = _atom_block(lines, i, n)
        if block is None:
            break  # truncated last frame of a running or killed job
        if symbols is None:
            symbols = [b[0] for b in block]
        frames.append(_positions(block))
        i += n + 2
    return symbols or [], np.array(frames)


def read_last_xyz_frame(path, num_atoms: int) -> tuple[int | None, np.ndarray] | None:
    """The newest complete frame of an xyz trajectory of ``num_atoms`` atoms, reading only the end of the file
    (a long study's trajectory is megabytes): (its MD step from i-PI's ``Step:`` comment, None without one;
    positions (N, 3) in the file's units). None before the first complete frame."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        window = 2 * (num_atoms + 2) * 96  # two frames of typical line length
        while True:
            handle.seek(max(0, size - window))
            lines = complete_lines(handle.read().decode(errors="replace"))
            if window < size:
                lines = lines[1:]  # the window began inside a line
            frame = _last_frame(lines, num_atoms)
            if frame is not None or window >= size:
                return frame
            window *= 4


def _last_frame(lines: list[str], num_atoms: int) -> tuple[int | None, np.ndarray] | None:
    for start in range(len(lines) - num_atoms - 2, -1, -1):
        block = _atom_block(lines, start, num_atoms) if lines[start].strip() == str(num_atoms) else None
        if block is not None:
            step = re.search(r"Step:\s*(\d+)", lines[start + 1])
            return (int(step.group(1)) if step else None), _positions(block)
    return None


def _atom_block(lines: list[str], start: int, num_atoms: int) -> list[list[str]] | None:
    """The split atom lines of the xyz frame whose count line is lines[start]; None if cut short."""
    block = [line.split() for line in lines[start + 2: start + 2 + num_atoms]]
    return block if len(block) == num_atoms and all(len(b) >= 4 for b in block) else None


def _positions(block: list[list[str]]) -> np.ndarray:
    return np.array([[float(x) for x in b[1:4]] for b in block])


def sampling_temperatures(props: dict, source) -> np.ndarray:
    """Per properties record, the temperature (K) its configuration was sampled at.

    i-PI's ``ensemble_temperature`` when written (in REMD it follows a configuration from temperature
    to temperature). Without it (NVE, or an NVT input that writes only ``temperature``), every record of
    the system gets one value: the mean of the instantaneous kinetic ``temperature``, rounded to 0.1 K.
    Grouping by the instantaneous value would put every frame at a temperature of its own."""
    if "ensemble_temperature" in props:
        return np.asarray(props["ensemble_temperature"], dtype=np.float64)
    if "temperature" in props:
        kinetic = np.asarray(props["temperature"], dtype=np.float64)
        return np.full(len(kinetic), round(float(kinetic.mean()), 1) if len(kinetic) else np.nan)
    raise UserError(f"{source}: its properties have neither ensemble_temperature nor temperature; "
                    "add temperature{kelvin} to the input's <properties>")


@dataclass
class ReplicaSeries:
    """Frames at one temperature, in time order."""

    temperature: float    # K
    time: np.ndarray      # ps
    positions: np.ndarray  # (F, N, 3) Å
    potential: np.ndarray  # eV
    bias: np.ndarray       # eV
    system: np.ndarray | None = None  # per frame: index of the system (find_systems order) it came from


def timestep_ps(properties: dict[str, np.ndarray]) -> float | None:
    """The run's MD time step in ps from a properties file's columns (read_properties): its last time over
    its last step; None before a step was written."""
    steps = int(properties["step"][-1]) if len(properties.get("step", ())) else 0
    return float(properties["time"][-1]) / steps if steps and "time" in properties else None


def system_name(properties_file: Path) -> str:
    """The system a properties file belongs to: 'W-3' for W-3_sim.out, 'T-0' for T-0_sim.out."""
    return properties_file.stem.split("_")[0]


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


@dataclass
class Breakage:
    """A configuration whose covalent bond graph fell apart into more fragments than it started with."""

    system: str           # output stem, e.g. 'T-3_sim'
    time: float           # ps, first frame seen broken
    temperature: float    # K, the temperature it had in that frame
    fragments: int        # bonded fragments in that frame (1 for an intact molecule)
    excluded_frames: int  # frames left out of the per-temperature series


def atomic_numbers_of(symbols) -> np.ndarray:
    """Atomic numbers of a trajectory's element symbols."""
    from ase.data import atomic_numbers

    return np.array([atomic_numbers[s] for s in symbols])


def fragment_count(symbols, positions) -> int:
    """Number of covalently bonded fragments in one frame (positions (N, 3) Å), with the breakage
    criterion of topology.fragment_count (1.6 × covalent radii: thermal stretching is not a break)."""
    return topology.fragment_count(atomic_numbers_of(symbols), positions)


def fragment_counts(symbols, frames) -> np.ndarray:
    """fragment_count of every frame (T, N, 3) Å, for frames that may have more fragments than frame 0;
    the others hold frame 0's count.

    Only frames in which some bond of frame 0 is longer than the breakage limit are counted in full:
    a frame that keeps every bond of frame 0 has all of frame 0's graph edges, so no more fragments
    (an Ac-Ala3-NHMe metadynamics of 17 000 frames: ~30 s of graph searches before, one array
    operation now)."""
    frames = np.asarray(frames, dtype=np.float64)
    numbers = atomic_numbers_of(symbols)
    counts = np.full(len(frames), topology.fragment_count(numbers, frames[0]))
    # the bonds of frame 0's graph (1.6 ×), each with the same 1.6 × limit
    guard = BondGuard(numbers, frames[0], None, BREAKAGE_BOND_SCALE, bond_scale=BREAKAGE_BOND_SCALE)
    for start in range(0, len(frames), 1024):  # blocks keep the (T, M, 3) temporary small
        block = frames[start:start + 1024]
        for t in np.flatnonzero(guard.over_limit(block)):
            counts[start + t] = topology.fragment_count(numbers, block[t])
    return counts


def first_broken_frame(symbols, frames) -> tuple[int, int] | None:
    """(frame index, fragments) from which every frame has more fragments than frame 0, or None.

    Only a break that lasts to the last frame counts: a bond stretched in one hot frame is not one.
    """
    if len(frames) == 0:
        return None
    counts = fragment_counts(symbols, frames)
    broken = counts > counts[0]
    if not broken[-1]:
        return None
    index = len(broken) - int(np.argmin(broken[::-1])) if not broken.all() else 0
    return index, int(counts[index])


def demultiplex(run_dir: Path) -> tuple[list[str], list[ReplicaSeries], list[Breakage]]:
    """Per-temperature series (sorted by temperature) from the per-configuration outputs, and the
    configurations that broke apart (their frames from the break on are not in the series)."""
    collected: dict[float, list] = {}
    symbols = []
    breakages = []
    for system, (properties_file, trajectory_file) in enumerate(find_systems(run_dir)):
        props = read_properties(properties_file)
        symbols, frames = read_xyz_frames(trajectory_file)
        count = min(len(frames), len(props["step"]))
        temperatures = sampling_temperatures(props, properties_file)[:count]
        broken = first_broken_frame(symbols, frames[:count])
        if broken is not None:
            index, fragments = broken
            breakages.append(Breakage(properties_file.stem, float(props["time"][index]), float(temperatures[index]),
                                      fragments, count - index))
            count = index
        for k in range(count):
            key = round(float(temperatures[k]), 3)
            collected.setdefault(key, []).append(
                (props["time"][k], frames[k], props.get("potential", np.zeros(count))[k],
                 props.get("ensemble_bias", np.zeros(count))[k], system))
    series = []
    for temperature in sorted(collected):
        rows = sorted(collected[temperature], key=lambda r: r[0])
        series.append(ReplicaSeries(temperature, np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                                    np.array([r[2] for r in rows]), np.array([r[3] for r in rows]),
                                    np.array([r[4] for r in rows])))
    return symbols, series, breakages


def write_temperature_trajectories(out_dir: Path, symbols, series: list[ReplicaSeries]) -> list[Path]:
    """One extxyz per temperature, ``trajectory_<T>K.extxyz``: the demultiplexed frames in time order
    (Å; ``time_ps``, ``temperature_K``, ``potential_eV`` and ``bias_eV`` in each frame's info).
    i-PI's own REMD trajectories follow a configuration through the temperatures; these follow a
    temperature. Walkers at one temperature come out pooled in time order, as the analysis uses them."""
    import ase
    import ase.io

    paths = []
    for s in series:
        frames = []
        for time, positions, potential, bias in zip(s.time, s.positions, s.potential, s.bias):
            atoms = ase.Atoms(symbols, positions=positions)
            atoms.info.update(time_ps=float(time), temperature_K=float(s.temperature), potential_eV=float(potential),
                              bias_eV=float(bias))
            frames.append(atoms)
        path = Path(out_dir) / f"trajectory_{s.temperature:g}K.extxyz"
        ase.io.write(path, frames, format="extxyz")
        paths.append(path)
    return paths
