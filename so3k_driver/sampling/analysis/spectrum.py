"""Vibrational spectra from MD: the vibrational density of states (VDOS) and bond-stretch spectra.

VDOS, the power spectrum of the mass-weighted velocity autocorrelation function (Wiener-Khinchin):

    I(ν̃) ∝ Σ_i m_i Σ_α |Σ_t w(t) v_iα(t) exp(-2πi c ν̃ t)|²,

with a Hann window w(t) over the F frames of interval Δt, ν̃ in cm^-1 (c = speed of light in
cm/ps), normalised to unit area over [0, ν̃_Nyquist]: Σ_k I(ν̃_k) δν̃ = 1 (I in 1/cm^-1 = cm). In the
harmonic limit every normal mode holds k_B T and contributes one line of equal area at its
frequency. The resolution is 1/(F Δt c) cm^-1 (the Hann window widens a line to about twice that);
the grid is finer (zero padding), which places a peak but does not resolve two closer lines.

Bond-stretch spectra project the motion onto bonds: the power spectrum of d|r_i - r_j|/dt summed
over all bonds of one element pair (C-H, N-H, C-O, ...), each normalised to unit area. They say
which band of the VDOS is which stretch without a window of expected frequencies.

Without velocities, velocities are central differences of positions, v(t) = (r(t+Δt) - r(t-Δt))/2Δt,
which scales the power at ν̃ by sinc²(2π c ν̃ Δt) (0.95 at 3000 cm^-1 for Δt = 1 fs; peak positions do not
move noticeably). Trajectories of several replicas or beads are averaged (power spectra, cut to the
shortest). The spectrum is that of the run as it is: for NVE or weakly thermostatted runs (a
Langevin friction γ widens every line by about γ).

The numerical core (velocities_from_positions, vdos, bond_stretch_spectra, find_peaks) takes
arrays and returns arrays; write_spectrum reads an i-PI run folder and writes spectrum.json and
spectrum.png for ``so3k analyze``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...evaluation.topology import bond_matrix
from ...ipi.properties import read_properties
from ...units import PICOSECONDS_PER_TIME_UNIT, SPEED_OF_LIGHT_CM_PER_PS
from .ipi_outputs import read_xyz_frames

# X-H stretches reach ~3700 cm^-1: frames further apart than this alias them (Nyquist 1/(2Δt) < 4000 cm^-1).
MIN_NYQUIST_CM1 = 4000.0
MIN_FRAMES = 32
ZERO_PADDING = 4
PLOT_MAX_CM1 = 4000.0
PEAK_MIN_PROMINENCE = 0.05  # fraction of the spectrum's maximum
MAX_PEAKS = 40


@dataclass(frozen=True)
class Spectrum:
    """A normalised power spectrum on a grid from 0 to the Nyquist frequency."""

    frequency_cm1: np.ndarray   # (K,) cm^-1
    intensity: np.ndarray       # (K,) cm (1/cm^-1); Σ intensity · spacing_cm1 = 1
    resolution_cm1: float       # 1/(F Δt c), cm^-1
    frames: int                 # F, frames per trajectory used
    frame_interval_fs: float    # Δt, fs
    partial: dict = field(default_factory=dict)  # element → (K,) share of intensity (sums to it)

    @property
    def spacing_cm1(self) -> float:
        return float(self.frequency_cm1[1] - self.frequency_cm1[0])

    @property
    def nyquist_cm1(self) -> float:
        return nyquist_cm1(self.frame_interval_fs)


def nyquist_cm1(frame_interval_fs: float) -> float:
    """Highest frequency frames Δt (fs) apart resolve: 1/(2 Δt c), cm^-1."""
    return 1.0 / (2.0 * frame_interval_fs * 1e-3 * SPEED_OF_LIGHT_CM_PER_PS)


def velocities_from_positions(positions, frame_interval_fs: float) -> np.ndarray:
    """Central differences of (F, N, 3) positions Δt (fs) apart: (F-2, N, 3) velocities, length unit/fs,
    at frames 1..F-2."""
    positions = np.asarray(positions, float)
    if positions.ndim != 3 or len(positions) < 3:
        raise ValueError(f"positions must be (F >= 3, N, 3), got shape {positions.shape}")
    return (positions[2:] - positions[:-2]) / (2.0 * frame_interval_fs)


def _power(signals: np.ndarray, frame_interval_fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (cm^-1) and |FFT|² of Hann-windowed signals (F, ...) along axis 0 (zero-padded)."""
    frames = len(signals)
    window = np.hanning(frames).reshape((frames,) + (1,) * (signals.ndim - 1))
    length = ZERO_PADDING * frames
    transform = np.fft.rfft(signals * window, n=length, axis=0)
    frequency = np.fft.rfftfreq(length, d=frame_interval_fs * 1e-3) / SPEED_OF_LIGHT_CM_PER_PS
    return frequency, np.abs(transform) ** 2


def _check_trajectories(trajectories, frame_interval_fs: float) -> list[np.ndarray]:
    trajectories = [np.asarray(t, float) for t in trajectories]
    if not trajectories:
        raise ValueError("no trajectories given")
    if not frame_interval_fs > 0:
        raise ValueError(f"frame interval must be > 0 fs, got {frame_interval_fs}")
    frames = min(len(t) for t in trajectories)
    if frames < 4:
        raise ValueError(f"a spectrum needs at least 4 frames, got {frames}")
    return [t[:frames] for t in trajectories]


def vdos(trajectories, masses, frame_interval_fs: float, symbols=None) -> Spectrum:
    """VDOS of velocity trajectories [(F, N, 3), ...] (any velocity unit: it cancels in the
    normalisation) with masses (N,) (Da), frames Δt fs apart; averaged over the trajectories
    (replicas, beads), each cut to the shortest. symbols (N,) adds per-element partial spectra."""
    trajectories = _check_trajectories(trajectories, frame_interval_fs)
    masses = np.asarray(masses, float)
    if masses.shape != trajectories[0].shape[1:2]:
        raise ValueError(f"masses must be ({trajectories[0].shape[1]},), got shape {masses.shape}")
    per_atom = 0.0
    for velocities in trajectories:
        frequency, power = _power(velocities, frame_interval_fs)
        per_atom = per_atom + power.sum(axis=-1) * masses  # (K, N)
    total = per_atom.sum(axis=1)
    norm = total.sum() * (frequency[1] - frequency[0])
    partial = {}
    if symbols is not None:
        symbols = np.asarray(symbols)
        partial = {str(s): per_atom[:, symbols == s].sum(axis=1) / norm for s in dict.fromkeys(symbols.tolist())}
    frames = len(trajectories[0])
    return Spectrum(frequency, total / norm, _resolution(frames, frame_interval_fs), frames, frame_interval_fs, partial)


def _resolution(frames: int, frame_interval_fs: float) -> float:
    return 1.0 / (frames * frame_interval_fs * 1e-3 * SPEED_OF_LIGHT_CM_PER_PS)


def bonds_by_type(symbols, positions) -> dict[str, np.ndarray]:
    """Covalent bonds of one frame (positions (N, 3) Å; bond_matrix) grouped by element pair,
    named as chemists write them, hydrogen last, otherwise alphabetical ('C-H', 'N-H', 'C-O', 'C-N'):
    {type: (B, 2) atom indices, in the order of the name}."""
    from ase.data import atomic_numbers

    numbers = np.array([atomic_numbers[s] for s in symbols])
    i, j = np.nonzero(np.triu(bond_matrix(numbers, positions)))
    groups: dict[str, list] = {}
    order = [(s == "H", s) for s in symbols]
    for a, b in zip(i, j):
        first, second = (a, b) if order[a] <= order[b] else (b, a)
        groups.setdefault(f"{symbols[first]}-{symbols[second]}", []).append((first, second))
    return {name: np.array(pairs) for name, pairs in sorted(groups.items())}


def bond_stretch_spectra(positions, bonds: dict, frame_interval_fs: float, velocities=None) -> dict[str, Spectrum]:
    """Power spectra of the bond-length rates d|r_a - r_b|/dt per bond type, each normalised to unit area.

    positions: [(F, N, 3), ...] per trajectory (Å); bonds: {type: (B, 2)} (bonds_by_type). With
    velocities [(F, N, 3), ...] (same frames), the rate is (v_a - v_b)·(r_a - r_b)/|r_a - r_b|;
    without, central differences of the bond lengths (frames 1..F-2)."""
    positions = _check_trajectories(positions, frame_interval_fs)
    if velocities is not None:
        velocities = _check_trajectories(velocities, frame_interval_fs)
        if len(velocities) != len(positions) or len(velocities[0]) != len(positions[0]):
            raise ValueError("positions and velocities must have the same trajectories and frames")
    spectra = {}
    for name, pairs in bonds.items():
        summed, frequency, frames = 0.0, None, None
        for k, r in enumerate(positions):
            vector = r[:, pairs[:, 0]] - r[:, pairs[:, 1]]  # (F, B, 3)
            length = np.linalg.norm(vector, axis=-1)
            if velocities is None:
                rate = (length[2:] - length[:-2]) / (2.0 * frame_interval_fs)
            else:
                v = velocities[k]
                rate = np.einsum("fbx,fbx->fb", v[:, pairs[:, 0]] - v[:, pairs[:, 1]], vector) / length
            frequency, power = _power(rate, frame_interval_fs)
            summed = summed + power.sum(axis=1)
            frames = len(rate)
        intensity = summed / (summed.sum() * (frequency[1] - frequency[0]))
        spectra[name] = Spectrum(frequency, intensity, _resolution(frames, frame_interval_fs), frames, frame_interval_fs)
    return spectra


def find_peaks(frequency_cm1, intensity, min_prominence: float = PEAK_MIN_PROMINENCE, min_frequency_cm1: float = 0.0,
               max_frequency_cm1: float = np.inf, max_peaks: int = MAX_PEAKS) -> list[float]:
    """Frequencies (cm^-1, ascending) of the local maxima in [min, max] whose prominence (height above
    the higher of the lowest points separating them from a higher maximum on either side) is at least
    min_prominence × the largest intensity in the range; the max_peaks most prominent."""
    frequency_cm1 = np.asarray(frequency_cm1, float)
    inside = (frequency_cm1 >= min_frequency_cm1) & (frequency_cm1 <= max_frequency_cm1)
    f, y = frequency_cm1[inside], np.asarray(intensity, float)[inside]
    if len(y) < 3:
        return []
    maxima = np.flatnonzero((y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:])) + 1
    found = []
    for m in maxima:
        left_higher = np.flatnonzero(y[:m] > y[m])
        right_higher = np.flatnonzero(y[m + 1:] > y[m])
        left_base = y[(left_higher[-1] if len(left_higher) else 0): m + 1].min()
        right_base = y[m: (m + 1 + right_higher[0] + 1 if len(right_higher) else len(y))].min()
        prominence = y[m] - max(left_base, right_base)
        if prominence >= min_prominence * y.max():
            found.append((prominence, f[m]))
    strongest = sorted(found, reverse=True)[:max_peaks]
    return sorted(float(freq) for _, freq in strongest)


# ---- i-PI run folders ---------------------------------------------------------------------------

STEP_FIELD = re.compile(r"Step:\s*(\d+)")
TIME_COLUMN = re.compile(r"-->\s*time\{(\w+)\}")


def frame_steps(path, limit: int | None = None) -> list[int]:
    """MD step of each frame of an i-PI xyz trajectory (its 'Step:' comment field); the first limit only."""
    steps = []
    with open(path, errors="replace") as handle:
        for line in handle:
            match = STEP_FIELD.search(line) if line.startswith("#") else None
            if match:
                steps.append(int(match.group(1)))
                if limit is not None and len(steps) >= limit:
                    break
    return steps


def md_time_step_fs(properties_file) -> float:
    """The MD time step (fs) from an i-PI properties file's step and time columns."""
    header = Path(properties_file).read_text(errors="replace")[:20000]
    unit = TIME_COLUMN.search(header)
    props = read_properties(properties_file)
    if unit is None or "step" not in props or unit.group(1) not in PICOSECONDS_PER_TIME_UNIT:
        raise ValueError(f"{properties_file}: needs 'step' and 'time{{picosecond}}' columns for the time step")
    step, time = props["step"], props["time"] * PICOSECONDS_PER_TIME_UNIT[unit.group(1)]
    if len(step) < 2 or step[-1] == step[0]:
        raise ValueError(f"{properties_file}: fewer than two MD steps recorded")
    return float((time[-1] - time[0]) / (step[-1] - step[0]) * 1e3)


@dataclass
class _Source:
    kind: str                 # 'velocities' or 'positions'
    properties: Path
    velocity_files: list      # per bead/replica, same order as position_files
    position_files: list


def find_trajectories(run_dir: Path) -> _Source | None:
    """The velocity trajectories ('<stem>.vel_<bead>.xyz') of every system with a properties file
    '<stem>.out', or else its position trajectories ('<stem>.pos_<bead>.xyz'); None when neither."""
    outs = [out for out in sorted(Path(run_dir).glob("*.out"))]
    velocities = [(out, sorted(out.parent.glob(out.name[:-4] + ".vel_*.xyz"))) for out in outs]
    positions = [(out, sorted(out.parent.glob(out.name[:-4] + ".pos_*.xyz"))) for out in outs]
    vel_files = [f for _, files in velocities for f in files]
    pos_files = [f for _, files in positions for f in files]
    first_out = next((out for out, files in velocities + positions if files), None)
    if first_out is None:
        return None
    if vel_files:
        return _Source("velocities", first_out, vel_files, pos_files if len(pos_files) == len(vel_files) else [])
    return _Source("positions", first_out, [], pos_files)


def _frames_and_interval(files, time_step_fs: float) -> tuple[list[np.ndarray], list[str], float]:
    """Frames of each trajectory file (only frames of strictly increasing step: a resumed run can
    repeat a few) and their common interval (fs)."""
    trajectories, symbols, interval = [], [], None
    for path in files:
        steps = np.array(frame_steps(path))
        symbols, frames = read_xyz_frames(path)
        steps = steps[:len(frames)]
        keep = np.concatenate([[True], steps[1:] > np.maximum.accumulate(steps)[:-1]]) if len(steps) else steps
        steps, frames = steps[keep], frames[:len(steps)][keep]
        if len(steps) < 2:
            raise ValueError(f"{path.name}: fewer than 2 frames")
        strides = np.unique(np.diff(steps))
        if len(strides) != 1:
            raise ValueError(f"{path.name}: frames are not evenly spaced (step strides {strides.tolist()[:5]})")
        if interval is not None and abs(interval - strides[0] * time_step_fs) > 1e-9:
            raise ValueError(f"{path.name}: frame interval differs from the other trajectories")
        interval = float(strides[0] * time_step_fs)
        trajectories.append(frames)
    return trajectories, symbols, interval


@dataclass
class RunSpectrum:
    """The spectra of one i-PI run folder."""

    vdos: Spectrum
    bonds: dict          # bond type → Spectrum (empty without positions)
    bond_counts: dict    # bond type → number of bonds
    source: str          # 'velocities' or 'positions'
    time_step_fs: float  # MD time step
    trajectories: int    # trajectories averaged (replicas × beads)


def spectrum_of_run(run_dir: Path) -> RunSpectrum | str:
    """The spectra of an i-PI run folder, or one line saying why there are none."""
    source = find_trajectories(run_dir)
    if source is None:
        return "no spectrum: no '*.vel_*.xyz' or '*.pos_*.xyz' trajectories"
    files = source.velocity_files or source.position_files
    try:
        time_step = md_time_step_fs(source.properties)
    except ValueError as error:
        return f"no spectrum: {error}"
    steps = frame_steps(files[0], limit=2)
    if len(steps) < 2:
        return f"no spectrum: {files[0].name} has fewer than 2 frames"
    interval = (steps[1] - steps[0]) * time_step
    if interval <= 0 or nyquist_cm1(interval) < MIN_NYQUIST_CM1:
        return (f"no spectrum: {source.kind} are written every {interval:g} fs, which resolves frequencies only up "
                f"to {nyquist_cm1(interval):.0f} cm^-1 (< {MIN_NYQUIST_CM1:.0f}); write velocities every step or two")
    try:
        trajectories, symbols, interval = _frames_and_interval(files, time_step)
        positions = trajectories if source.kind == "positions" else (
            _frames_and_interval(source.position_files, time_step)[0] if source.position_files else None)
    except ValueError as error:
        return f"no spectrum: {error}"
    if positions is not None and min(map(len, positions)) != min(map(len, trajectories)):
        positions = None  # positions not written with every velocity frame: no bond projection
    frames = min(len(t) for t in trajectories) - (2 if source.kind == "positions" else 0)
    if frames < MIN_FRAMES:
        return f"no spectrum: {frames} frames, at least {MIN_FRAMES} are needed"
    from ase.data import atomic_masses, atomic_numbers

    masses = atomic_masses[[atomic_numbers[s] for s in symbols]]
    velocities = trajectories if source.kind == "velocities" else [
        velocities_from_positions(t, interval) for t in trajectories]
    try:
        total = vdos(velocities, masses, interval, symbols)
        bond_types = bonds_by_type(symbols, positions[0][0]) if positions is not None else {}
        bonds = bond_stretch_spectra(positions, bond_types, interval,
                                     velocities if source.kind == "velocities" else None) if bond_types else {}
    except ValueError as error:  # e.g. systems with different atoms in one folder
        return f"no spectrum: {error}"
    return RunSpectrum(total, bonds,
                       {name: len(pairs) for name, pairs in bond_types.items()}, source.kind, time_step, len(files))


def write_spectrum(run_dir: Path, out_dir: Path) -> str:
    """spectrum.json and spectrum.png of run_dir in out_dir when it has suitable trajectories; returns
    one summary line (what was found, or why there is no spectrum)."""
    result = spectrum_of_run(Path(run_dir))
    if isinstance(result, str):
        return result
    total = result.vdos
    floor = 2.0 * total.resolution_cm1  # below: the window's leakage of the zero-frequency (drift) power
    peaks = find_peaks(total.frequency_cm1, total.intensity, min_frequency_cm1=floor)
    bond_peaks = {name: {"bonds": result.bond_counts[name], "peak_cm1": _strongest(s, floor),
                         "peaks_cm1": [round(p, 1) for p in find_peaks(s.frequency_cm1, s.intensity,
                                                                       min_frequency_cm1=floor)]}
                  for name, s in result.bonds.items()}
    shown = total.frequency_cm1 <= PLOT_MAX_CM1
    record = {
        "source": result.source,
        "source_note": ("velocities written by i-PI" if result.source == "velocities"
                        else "velocities by central differences of positions (power scaled by sinc^2(2 pi c nu dt))"),
        "frames": total.frames, "frame_interval_fs": total.frame_interval_fs, "time_step_fs": result.time_step_fs,
        "trajectories_averaged": result.trajectories,
        "resolution_cm1": total.resolution_cm1, "grid_spacing_cm1": total.spacing_cm1, "nyquist_cm1": total.nyquist_cm1,
        "window": "hann", "normalisation": "sum(intensity) * grid_spacing_cm1 = 1 over [0, nyquist]; intensity in cm",
        "peaks_cm1": [round(p, 1) for p in peaks],
        "peak_rule": f"local maxima above {floor:.0f} cm^-1 with prominence >= {PEAK_MIN_PROMINENCE} x maximum",
        "bond_stretch": bond_peaks,
        "frequency_cm1": np.round(total.frequency_cm1[shown], 2).tolist(),
        "intensity_cm": np.round(total.intensity[shown], 8).tolist(),
    }
    out_dir = Path(out_dir)
    (out_dir / "spectrum.json").write_text(json.dumps(record, indent=1) + "\n")
    _spectrum_plot(out_dir / "spectrum.png", total, result.bonds, bond_peaks, result.source)
    stretches = ", ".join(f"{name} {info['peak_cm1']:.0f}" for name, info in bond_peaks.items()) or "none (no positions)"
    return (f"Vibrational spectrum (VDOS from {result.source}, {total.frames} frames every {total.frame_interval_fs:g} fs, "
            f"resolution {total.resolution_cm1:.1f} cm^-1): strongest bond-stretch frequency (cm^-1) {stretches}; "
            "[spectrum.png](spectrum.png), spectrum.json.")


def _strongest(spectrum: Spectrum, floor: float) -> float:
    above = spectrum.frequency_cm1 >= floor
    return round(float(spectrum.frequency_cm1[above][np.argmax(spectrum.intensity[above])]), 1)


def _spectrum_plot(path, total: Spectrum, bonds: dict, bond_peaks: dict, kind: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    shown = total.frequency_cm1 <= PLOT_MAX_CM1
    f = total.frequency_cm1[shown]
    top.plot(f, total.intensity[shown], color="black", lw=1.0, label="all atoms")
    for element, share in total.partial.items():
        top.plot(f, share[shown], lw=0.7, label=element)
    vibrations = shown & (total.frequency_cm1 >= 2.0 * total.resolution_cm1)  # not the zero-frequency drift spike
    top.set_ylim(0, 1.15 * total.intensity[vibrations].max())
    top.set(ylabel="VDOS (cm, normalised)", title=f"VDOS from {kind}: {total.frames} frames × {total.frame_interval_fs:g} fs, "
            f"resolution {total.resolution_cm1:.1f} cm$^{{-1}}$")
    top.legend(fontsize=8, loc="upper left")
    for name, spectrum in bonds.items():
        line, = bottom.plot(f, spectrum.intensity[shown], lw=0.9, label=f"{name} ({bond_peaks[name]['bonds']} bonds)")
        bottom.axvline(bond_peaks[name]["peak_cm1"], color=line.get_color(), ls=":", lw=0.8)
    bottom.set(xlabel="wavenumber (cm$^{-1}$)", ylabel="bond-stretch spectrum (cm, normalised)", xlim=(0, PLOT_MAX_CM1))
    if bonds:
        bottom.legend(fontsize=8, loc="upper left")
    else:
        bottom.text(0.5, 0.5, "no positions written with the velocities", ha="center", transform=bottom.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
