"""Unbiased averages of a metadynamics run's per-frame observables (helix fraction, end-to-end distance,
radius of gyration), reweighted from the bias each trajectory frame carried.

A biased run's plain averages describe the biased ensemble: a bias that fills the helix basin pushes
the chain out of it, so the helix fraction of the frames understates the helix at equilibrium. Each
frame of i-PI's properties output carries the bias applied to it (``ensemble_bias``, eV), and COLVAR
gives the bias's offset c(t) = metad.bias - metad.rbias (kJ/mol) as the run goes. A frame taken at time
t in configuration s then has the weight

    w = exp((V(s, t) - c(t)) / kT)                  (Tiwary-Parrinello, as free_energy.py)

and an unbiased average is <O> = Σ w O / Σ w over the frames kept after the burn-in. Its error is the
run's two halves, each averaged alone, as for the free energies. c(t) is interpolated in the COLVAR
records at the frame's MD step: it changes only when a hill is laid, so being a step off (PLUMED numbers
its records from step 1) moves it by nothing that matters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import free_energy
from .observables import TemperatureObservables, figure
from ...units import KJ_PER_MOL_IN_EV

JSON = "reweighted_observables.json"
PLOT = "reweighted_helix.png"
OBSERVABLES = {  # TemperatureObservables attribute: (label, unit)
    "helix_torsion": ("helix fraction, torsions", "dimensionless, 0–1"),
    "helix_hbond": ("helix fraction, i→i+4 H-bonds", "dimensionless, 0–1"),
    "three_ten_hbond": ("3₁₀ fraction, i→i+3 H-bonds", "dimensionless, 0–1"),
    "end_to_end": ("end-to-end distance", "Å"),
    "gyration": ("radius of gyration", "Å"),
}


@dataclass
class ReweightedAverages:
    """Unbiased averages at one temperature. means / first_half / second_half / biased: observable name
    -> value (biased: the plain mean of the kept frames, the biased ensemble's)."""

    temperature: float       # K
    frames: int              # frames of this temperature
    kept: int                # after the burn-in
    effective: float         # Kish's effective sample size of the kept frames' weights
    halves_effective: tuple[float, float]
    means: dict[str, float]
    first_half: dict[str, float]
    second_half: dict[str, float]
    biased: dict[str, float]

    def as_dict(self) -> dict:
        return {"temperature_K": self.temperature, "frames": self.frames, "frames_kept": self.kept,
                "effective_frames": round(self.effective, 1),
                "halves_effective_frames": [round(e, 1) for e in self.halves_effective],
                "observables": {name: {"unit": OBSERVABLES[name][1], "reweighted": _rounded(self.means[name]),
                                       "first_half": _rounded(self.first_half[name]),
                                       "second_half": _rounded(self.second_half[name]),
                                       "half_difference": _rounded(abs(self.first_half[name] - self.second_half[name])),
                                       "biased": _rounded(self.biased[name])} for name in self.means}}


def _rounded(value: float) -> float:
    return round(float(value), 4)


def frame_log_weights(frame_steps, frame_bias_eV, colvar_steps, colvar_offset_kJmol, temperature_K: float) -> np.ndarray:
    """ln w = (V - c(t)) / kT per frame: V the frame's bias (eV), c the offset metad.bias - metad.rbias
    (kJ/mol) of the COLVAR records at colvar_steps (MD steps, sorted), interpolated at the frames' steps
    (held at its first and last value outside them). Shifted so that the largest is 0."""
    colvar_steps = np.asarray(colvar_steps, float)
    if colvar_steps.size == 0:
        raise ValueError("no COLVAR records: the bias offset c(t) is unknown")
    if np.any(np.diff(colvar_steps) < 0):
        raise ValueError("COLVAR records are not in time order")
    offset = np.interp(np.asarray(frame_steps, float), colvar_steps, np.asarray(colvar_offset_kJmol, float))
    bias = np.asarray(frame_bias_eV, float) / KJ_PER_MOL_IN_EV
    return free_energy.log_weights(bias - offset, free_energy.thermal_energy(temperature_K))


def _weighted_mean(values, log_w) -> float:
    w = np.exp(log_w - log_w.max())
    return float(np.sum(w * values) / np.sum(w))


def reweighted_averages(data: TemperatureObservables, log_w, burn_in: float = free_energy.DEFAULT_BURN_IN
                        ) -> ReweightedAverages:
    """Unbiased averages of OBSERVABLES over the frames of data (time order) with weights exp(log_w),
    after dropping the first burn_in fraction; ValueError when fewer than 2 frames are left."""
    log_w = np.asarray(log_w, float)
    if len(log_w) != len(data.time):
        raise ValueError(f"{len(log_w)} weights for {len(data.time)} frames")
    kept, first, second = free_energy.kept_frames(len(log_w), burn_in)
    if first.stop - first.start < 1:
        raise ValueError(f"{len(log_w)} frames leave fewer than 2 after a burn-in of {burn_in:g}: no halves")

    def means(part: slice) -> dict[str, float]:
        return {name: _weighted_mean(getattr(data, name)[part], log_w[part]) for name in OBSERVABLES}

    return ReweightedAverages(
        data.temperature, len(log_w), kept.stop - kept.start, free_energy.effective_frames(log_w[kept]),
        (free_energy.effective_frames(log_w[first]), free_energy.effective_frames(log_w[second])),
        means(kept), means(first), means(second),
        {name: float(np.mean(getattr(data, name)[kept])) for name in OBSERVABLES})


def running_average(values, log_w) -> np.ndarray:
    """The reweighted average of values[:k + 1] for every k (a run stopped at frame k)."""
    log_w = np.asarray(log_w, float)
    w = np.exp(log_w - log_w.max())
    return np.cumsum(w * np.asarray(values, float)) / np.cumsum(w)


def weight_shares(log_w, systems, names: list[str], burn_in: float = free_energy.DEFAULT_BURN_IN) -> dict[str, float]:
    """The share of the kept frames' total weight that each system's frames carry (systems: per frame,
    an index into names). Walkers sharing one bias: how much each walker's path makes of the average."""
    kept = free_energy.kept_frames(len(log_w), burn_in)[0]
    log_w, systems = np.asarray(log_w, float)[kept], np.asarray(systems)[kept]
    w = np.exp(log_w - log_w.max())
    return {name: float(w[systems == k].sum() / w.sum()) for k, name in enumerate(names)}


def analysis(data: list[TemperatureObservables], biases_eV: list, colvars: dict[float, dict], ps_per_step: float,
             out_dir: Path, burn_in: float = free_energy.DEFAULT_BURN_IN, walkers: tuple | None = None) -> list[str]:
    """Reweighted averages at every temperature with a COLVAR (colvars: temperature K -> its columns, with
    time in MD steps, metad.bias and metad.rbias); writes JSON and, for the lowest such temperature, PLOT.
    biases_eV: per temperature of data, each frame's bias (eV). walkers: for a multiple-walker run,
    (per frame of its one temperature the walker index, walker names): the weight each walker carries.
    Returns summary.md lines ([] when no temperature has what it needs)."""
    results, weights = [], {}
    for d, bias in zip(data, biases_eV):
        columns = colvars.get(d.temperature)
        if not columns or "metad.rbias" not in columns or "metad.bias" not in columns:
            continue
        log_w = frame_log_weights(np.rint(d.time / ps_per_step), bias, columns["time"],
                                  columns["metad.bias"] - columns["metad.rbias"], d.temperature)
        try:
            results.append(reweighted_averages(d, log_w, burn_in))
        except ValueError:
            continue
        weights[d.temperature] = log_w
    if not results:
        return []
    lowest = min(weights)
    _plot(out_dir / PLOT, next(d for d in data if d.temperature == lowest), weights[lowest], burn_in)
    document = {"method": "frames weighted by exp((V - c(t)) / kT): V the bias i-PI applied to the frame "
                          "(ensemble_bias), c(t) = metad.bias - metad.rbias from COLVAR at the frame's step "
                          "(Tiwary-Parrinello)", "burn_in": burn_in,
                "temperatures": [r.as_dict() for r in results]}
    shares = None
    if walkers is not None and len(weights) == 1:
        shares = weight_shares(weights[lowest], walkers[0], list(walkers[1]), burn_in)
        document["weight_share_by_walker"] = {name: round(share, 4) for name, share in shares.items()}
    (out_dir / JSON).write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    lines = markdown(results, burn_in)
    if shares is not None:
        lines += ["Share of the total weight carried by each walker's frames (the average leans on the walkers "
                  "with the largest shares): " + ", ".join(f"{name} {share:.2f}" for name, share in shares.items())
                  + ".", ""]
    return lines


def markdown(results: list[ReweightedAverages], burn_in: float) -> list[str]:
    lines = ["## Unbiased averages (trajectory frames reweighted by their bias)", "",
             f"Each trajectory frame weighted by exp((V - c(t)) / kT) after a burn-in of {burn_in:g} of the frames; "
             "in brackets the run's first and second halves, each reweighted alone; 'biased' is the plain mean of "
             f"the same frames. Details in [{JSON}]({JSON}); the lowest temperature's helix fraction as the run "
             f"grows: [{PLOT}]({PLOT}).", "",
             "| T (K) | frames kept (effective) | " + " | ".join(f"{label} ({unit.split(',')[0]})"
                                                        for label, unit in OBSERVABLES.values()) + " |",
             "|---|---|" + "---|" * len(OBSERVABLES)]
    for r in results:
        digits = {"helix_torsion": 2, "helix_hbond": 2, "three_ten_hbond": 2, "end_to_end": 1, "gyration": 2}
        cells = [f"{r.means[n]:.{digits[n]}f} [{r.first_half[n]:.{digits[n]}f}, {r.second_half[n]:.{digits[n]}f}]; "
                 f"biased {r.biased[n]:.{digits[n]}f}" for n in OBSERVABLES]
        lines.append(f"| {r.temperature:g} | {r.kept} ({r.effective:.0f}) | " + " | ".join(cells) + " |")
    return lines + [""]


def _plot(path, data: TemperatureObservables, log_w, burn_in: float):
    kept = free_energy.kept_frames(len(log_w), burn_in)[0]
    time = data.time[kept]
    plt, fig, ax = figure(1, 1, size=(6.5, 4.5))
    for name, style in (("helix_torsion", "-"), ("helix_hbond", "--")):
        values = getattr(data, name)[kept]
        label = OBSERVABLES[name][0]
        ax.plot(time, running_average(values, log_w[kept]), style, color="C0", label=f"{label}, reweighted")
        ax.plot(time, np.cumsum(values) / np.arange(1, len(values) + 1), style, color="C1", lw=0.8,
                label=f"{label}, biased (plain mean)")
    ax.set(xlabel="simulated time per replica or walker (ps)", ylabel="average so far (dimensionless, 0–1)",
           ylim=(-0.02, 1.02), title=f"helix fraction at {data.temperature:g} K, averaged from the burn-in on")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
