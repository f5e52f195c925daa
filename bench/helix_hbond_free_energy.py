"""How much free energy does the α-helix of Ac-Ala15-NHMe cost against SO3LR's mixed helix? F along the
helix CV hb (the smooth count of i→i+4 backbone H-bonds, ``peptide.helix_hbond_count``) at one temperature,
from metadynamics on hb and from replica exchange without bias (issue #13).

    python bench/helix_hbond_free_energy.py --metad "SO3LR=runs/metad_hb/run" --metad "v13=runs/metad_hb/run_v13" \\
        --remd "SO3LR REMD=runs/refine/so3lr" --remd-skip-ps 45 --out PREFIX [--alpha-from 7] [--burn-in 0.1]

--metad DIR: a study of ``so3k sample init --metad helix`` or ``--metad helix-form`` (the bias may act on hb
or on hb − hb3; one system or several walkers sharing one bias);
its COLVAR frames (walkers pooled in time order) are reweighted by exp(rbias/kT) (Tiwary & Parrinello;
``sampling.analysis.free_energy``) after the burn-in fraction. --remd DIR: a replica-exchange study; its
frames at the lowest temperature after --remd-skip-ps count with equal weight (hb computed here from the
trajectory frames, the same function PLUMED evaluates).

For each run: F(hb) in kJ/mol (zero at its minimum) with the same from each half of the kept frames, and the
state free energy ΔF_α = -kT ln(P(hb ≥ A) / P(hb < A)) (kJ/mol, A = --alpha-from): for the whole kept run,
its halves, four consecutive blocks and, for metadynamics, as the run grows (is it still drifting?), with
each walker's crossings between hb ≥ A and hb ≤ 3 (how many visits the estimate rests on).
Where the COLVAR also has hb3 (the i→i+3 count; helix-form runs), the reweighted mean of hb3, F(hb − hb3), the
free energy of the α side (hb − hb3 ≥ 0 against < 0, whole and halves) and the walkers' crossings between the
two basins (hb − hb3 ≥ 2 and ≤ −4) are reported too, with the map F(hb, hb3). Writes PREFIX.json and PREFIX.png (F(hb) with the halves; ΔF_α against
simulated time; for helix-form runs F(hb − hb3) and the map as a second row).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from so3k_driver.sampling import peptide
from so3k_driver.sampling.analysis import free_energy, plumed_files
from so3k_driver.sampling.analysis.ipi_outputs import (atomic_numbers_of, find_systems, read_properties,
                                                       read_xyz_frames, sampling_temperatures)
from so3k_driver.sampling.settings import StudySettings

BIN_WIDTH = 0.25      # hb units (H-bonds)
HB_RANGE = (0.0, 12.0)  # the α-helix of Ac-Ala15-NHMe makes ~13 × 0.8
BLOCKS = 4
HISTORY_POINTS = 12
FORM_EDGES = np.arange(-12.0, 12.0 + 0.25 / 2, 0.25)  # hb − hb3 (H-bonds): 3₁₀ helices negative, α positive
MAP_EDGES = np.arange(0.0, 13.0 + 0.25, 0.5)  # F(hb, hb3): both counts, H-bonds
# hb − hb3 ≥ 0: more α than 3₁₀ H-bonds (the α side); crossings between ≥ 2 and ≤ −4, the two basins' near edges
FORM_SPLIT, FORM_ALPHA_FROM, FORM_310_BELOW = 0.0, 2.0, -4.0
AWAY_BELOW_HB = 3.0  # a crossing goes from hb ≥ --alpha-from to hb ≤ this (about 3 of 13 α H-bonds) or back


def state_free_energy(hb, log_w, alpha_from: float, kT: float) -> float | None:
    """ΔF_α = -kT ln(Σ w[hb ≥ alpha_from] / Σ w[hb < alpha_from]) in kJ/mol; None if one side is empty."""
    hb, w = np.asarray(hb, float), np.exp(np.asarray(log_w, float) - np.max(log_w))
    helix, rest = w[hb >= alpha_from].sum(), w[hb < alpha_from].sum()
    if helix <= 0 or rest <= 0:
        return None
    return float(-kT * np.log(helix / rest))


def crossings(hb, time_ps, alpha_from: float, away_below: float) -> list[dict]:
    """One trajectory's passages between the α-rich state (hb ≥ alpha_from) and away from it (hb ≤
    away_below), with hysteresis: values between the two do not end a state, so fluctuations at one
    threshold are not counted. Returns [{"time_ps", "to": "alpha" | "away"}] in time order."""
    events, state = [], None
    for value, t in zip(np.asarray(hb, float), np.asarray(time_ps, float)):
        now = "alpha" if value >= alpha_from else "away" if value <= away_below else state
        if state is not None and now != state:
            events.append({"time_ps": round(float(t), 2), "to": now})
        state = now
    return events


def _rounded(value, digits=2):
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def estimate(hb, rbias, temperature: float, alpha_from: float, edges, burn_in: float) -> dict:
    """F(hb) and ΔF_α of frames (hb, rbias kJ/mol) in time order after dropping the first burn_in fraction:
    the kept frames, their halves (``free_energy.reweighted_free_energy``) and BLOCKS consecutive blocks."""
    fe = free_energy.reweighted_free_energy(hb, rbias, temperature, [edges], burn_in)
    kept, first, second = free_energy.kept_frames(len(rbias), burn_in)
    log_w = free_energy.log_weights(rbias, fe.kT)
    parts = {"full": kept, "first_half": first, "second_half": second}
    w = np.exp(log_w[kept])
    bounds = np.linspace(kept.start, kept.stop, BLOCKS + 1).astype(int)
    return {
        "frames": fe.frames_used,
        "effective_frames": round(fe.effective_frames[0], 1),
        "mean_hb": _rounded(np.sum(hb[kept] * w) / np.sum(w), 3),
        "delta_F_alpha_kJmol": {name: _rounded(state_free_energy(hb[s], log_w[s], alpha_from, fe.kT))
                                for name, s in parts.items()},
        "delta_F_alpha_blocks_kJmol": [_rounded(state_free_energy(hb[a:b], log_w[a:b], alpha_from, fe.kT))
                                       for a, b in zip(bounds[:-1], bounds[1:])],
        "profile_kJmol": {name: [_rounded(v) for v in f]
                          for name, f in (("full", fe.full), ("first_half", fe.first), ("second_half", fe.second))},
        "minimum_hb": round(fe.minimum[0], 3),
    }


def three_ten_summary(hb, hb3, rbias, temperature: float, burn_in: float) -> dict:
    """Reweighted means of hb3 (i→i+3 H-bonds) and hb − hb3, F(hb − hb3) in kJ/mol with its halves, and the map
    F(hb, hb3) of the whole kept run (rows hb, columns hb3; None where no frame fell)."""
    form = np.asarray(hb, float) - np.asarray(hb3, float)
    fe = free_energy.reweighted_free_energy(form, rbias, temperature, [FORM_EDGES], burn_in)
    kept, first, second = free_energy.kept_frames(len(form), burn_in)
    log_w = free_energy.log_weights(rbias, fe.kT)
    w = np.exp(log_w[kept])
    return {"delta_F_alpha_side_kJmol": {name: _rounded(state_free_energy(form[part], log_w[part], FORM_SPLIT, fe.kT))
                                         for name, part in (("full", kept), ("first_half", first), ("second_half", second))},
            "mean_hb3": _rounded(np.sum(hb3[kept] * w) / np.sum(w), 3),
            "mean_form": _rounded(np.sum(form[kept] * w) / np.sum(w), 3),
            "minimum_form": round(fe.minimum[0], 3),
            "hb_hb3_map_kJmol": [[_rounded(v) for v in row] for row in free_energy.reweighted_free_energy(
                np.column_stack([hb, hb3]), rbias, temperature, [MAP_EDGES, MAP_EDGES], burn_in).full],
            "form_profile_kJmol": {name: [_rounded(v) for v in f] for name, f in
                                   (("full", fe.full), ("first_half", fe.first), ("second_half", fe.second))}}


def metad_run(folder: Path, alpha_from: float, burn_in: float, edges) -> dict:
    # each walker's COLVAR, read once: pooled for the estimate, one by one for the crossings
    per_walker = [plumed_files.read_plumed(path) for path in plumed_files.walker_files(folder, "COLVAR")]
    if len(per_walker) > 1:
        name, columns = f"COLVAR of {len(per_walker)} walkers", plumed_files.pooled(per_walker)
    else:
        sets = plumed_files.temperature_sets(folder, "COLVAR")
        if len(sets) != 1:
            sys.exit(f"{folder}: expected one COLVAR set (one temperature, walkers pooled), found {len(sets)}")
        name, columns = sets[0]
        per_walker = [columns]
    if "hb" not in columns or "metad.rbias" not in columns:
        sys.exit(f"{folder}: {name} has no hb and metad.rbias columns: not a helix-CV metadynamics run")
    temperature = float(plumed_files.metad_option(folder, "TEMP"))
    hb, rbias = columns["hb"], columns["metad.rbias"]
    kept = free_energy.kept_frames(len(hb), burn_in)[0]
    # under i-PI, COLVAR's time column counts MD steps
    settings = StudySettings.load(folder)
    timestep_ps = settings.timestep_fs * 1e-3
    time_ps = columns["time"] * timestep_ps
    result = {"folder": str(folder), "method": f"metadynamics on {settings.metad.cv}, reweighted", "temperature_K": temperature,
              "walkers": len(per_walker), "time_per_walker_ps": round(float(time_ps[-1]), 2),
              "burn_in_fraction": burn_in, "burn_in_ps": round(float(time_ps[kept.start]), 2),
              **estimate(hb, rbias, temperature, alpha_from, edges, burn_in)}
    kT = free_energy.thermal_energy(temperature)
    history = []
    kept_count = kept.stop - kept.start
    for stop in np.linspace(kept_count / HISTORY_POINTS, kept_count, HISTORY_POINTS).astype(int):
        # the run as if stopped at this frame: burn-in and weights recomputed on what it had then
        upto = kept.start + stop
        part = free_energy.kept_frames(upto, burn_in)[0]
        history.append({"time_per_walker_ps": round(float(time_ps[upto - 1]), 2),
                        "delta_F_alpha_kJmol": _rounded(state_free_energy(
                            hb[part], free_energy.log_weights(rbias[part], kT), alpha_from, kT))})
    result["delta_F_alpha_history"] = history
    if "hb3" in columns:
        result.update(three_ten_summary(hb, columns["hb3"], rbias, temperature, burn_in))
        result["form_crossings"] = {"alpha_from_form": FORM_ALPHA_FROM, "away_below_form": FORM_310_BELOW, "walkers": [
            crossings(c["hb"] - c["hb3"], c["time"] * timestep_ps, FORM_ALPHA_FROM, FORM_310_BELOW) for c in per_walker]}
    # Each walker's own passages: how many independent visits the estimate rests on
    result["crossings"] = {"alpha_from_hb": alpha_from, "away_below_hb": AWAY_BELOW_HB, "walkers": [
        crossings(c["hb"], c["time"] * timestep_ps, alpha_from, AWAY_BELOW_HB) for c in per_walker]}
    return result


def remd_run(folder: Path, alpha_from: float, skip_ps: float, edges) -> dict:
    frames_hb, frames_time, series = [], [], []
    for properties_file, trajectory in find_systems(folder):
        symbols, frames = read_xyz_frames(trajectory)
        backbone = peptide.find_backbone(atomic_numbers_of(symbols), frames[0])
        properties = read_properties(properties_file)
        temperatures = sampling_temperatures(properties, properties_file)
        count = min(len(frames), len(temperatures))
        series.append((np.asarray(properties["time"][:count]), temperatures[:count],
                       peptide.helix_hbond_count(np.asarray(frames[:count]), backbone)))
    lowest = min(float(np.min(t)) for _, t, _ in series)
    for time, temperatures, hb in series:
        keep = np.isclose(temperatures, lowest, atol=0.05) & (time >= skip_ps)
        frames_hb.append(hb[keep])
        frames_time.append(time[keep])
    time, hb = np.concatenate(frames_time), np.concatenate(frames_hb)
    order = np.argsort(time, kind="stable")
    if len(order) < 2 * BLOCKS:
        sys.exit(f"{folder}: only {len(order)} frames at {lowest:g} K after {skip_ps:g} ps")
    return {"folder": str(folder), "method": "replica exchange, frames at the lowest temperature, unweighted",
            "temperature_K": lowest, "configurations": len(series), "skip_ps": skip_ps,
            "time_per_replica_ps": round(float(max(t[-1] for t, _, _ in series)), 2),
            **estimate(hb[order], np.zeros(len(order)), lowest, alpha_from, edges, burn_in=0.0)}


def labelled(specs: list[str]) -> list[tuple[str, Path]]:
    pairs = []
    for spec in specs:
        label, _, folder = spec.partition("=")
        if not folder or not Path(folder).is_dir():
            sys.exit(f"give each run as LABEL=DIR with an existing DIR, got {spec!r}")
        pairs.append((label, Path(folder)))
    return pairs


def print_crossings(walkers: list[list[dict]], rule: str, names: dict[str, str]) -> None:
    """One line per walker: how many crossings (``crossings``) under ``rule``, and when, each target state
    printed by its name in ``names`` (or as it is)."""
    for k, events in enumerate(walkers):
        print(f"  walker {k}: {len(events)} crossings ({rule}) at "
              + (", ".join(f"{e['time_ps']:.0f} ps → {names.get(e['to'], e['to'])}" for e in events) or "none"))


def _with_nan(values) -> np.ndarray:
    """A profile or map from the JSON report (None where no frame fell) as floats, NaN for None."""
    return np.array(values, dtype=float)  # numpy reads None as NaN


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = np.asarray(report["hb_bin_centres"])
    with_form = [label for label, run in report["runs"].items() if "form_profile_kJmol" in run]
    fig, axes = plt.subplots(2 if with_form else 1, 2, figsize=(11, 8.4 if with_form else 4.2))
    axes = axes.ravel()
    left, right = axes[0], axes[1]
    for k, (label, run) in enumerate(report["runs"].items()):
        colour = f"C{k}"
        profile = run["profile_kJmol"]
        left.plot(centres, _with_nan(profile["full"]), "-", color=colour, lw=1.8,
                  label=f"{label} ({run['method'].split(',')[0]})")
        left.plot(centres, _with_nan(profile["first_half"]), ":", color=colour, lw=1)
        left.plot(centres, _with_nan(profile["second_half"]), "--", color=colour, lw=1)
        if "form_profile_kJmol" in run:
            form = run["form_profile_kJmol"]
            for name, style, width in (("full", "-", 1.8), ("first_half", ":", 1), ("second_half", "--", 1)):
                axes[2].plot(report["form_bin_centres"], _with_nan(form[name]), style,
                             color=colour, lw=width, label=label if name == "full" else None)
        if "delta_F_alpha_history" in run:
            points = [(h["time_per_walker_ps"], h["delta_F_alpha_kJmol"]) for h in run["delta_F_alpha_history"]
                      if h["delta_F_alpha_kJmol"] is not None]
            if points:
                right.plot(*zip(*points), "o-", color=colour, label=label)
        elif run["delta_F_alpha_kJmol"]["full"] is not None:
            right.axhline(run["delta_F_alpha_kJmol"]["full"], color=colour, ls="--",
                          label=f"{label} ({run['time_per_replica_ps']:g} ps per replica)")
    left.axvline(report["alpha_from_hb"], color="grey", lw=0.8)
    left.set(xlabel="hb: smooth count of i→i+4 backbone H-bonds", ylabel="free energy (kJ/mol)",
             title=f"F(hb) at {report['temperature_K']:g} K (dotted, dashed: first and second half)", ylim=(-1, 40))
    left.legend(fontsize=7)
    right.axhline(0, color="grey", lw=0.8)
    right.set(xlabel="simulated time per walker (ps)", ylabel="ΔF_α (kJ/mol)",
              title=f"ΔF_α = -kT ln P(hb ≥ {report['alpha_from_hb']:g}) / P(hb < {report['alpha_from_hb']:g})")
    right.legend(fontsize=7)
    if with_form:
        axes[2].set(xlabel="hb − hb3: α minus 3₁₀ H-bonds (3₁₀ helices < 0 < α-helices)", ylabel="free energy (kJ/mol)",
                    title="F(hb − hb3), reweighted (dotted, dashed: halves)", ylim=(-1, 40))
        axes[2].legend(fontsize=7)
        # the first such run's map: where the α (hb high, hb3 low) and 3₁₀ (the reverse) helices lie
        label = with_form[0]
        grid = _with_nan(report["runs"][label]["hb_hb3_map_kJmol"])
        centres_map = report["map_bin_centres"]
        shown = axes[3].contourf(centres_map, centres_map, grid, levels=np.arange(0, 31, 3), cmap="viridis")
        fig.colorbar(shown, ax=axes[3], label="free energy (kJ/mol)")
        axes[3].set(xlabel="hb3: i→i+3 H-bonds (3₁₀)", ylabel="hb: i→i+4 H-bonds (α)",
                    title=f"F(hb, hb3) of {label}, reweighted (whole run, ≤ 30 kJ/mol)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metad", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--remd", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--remd-skip-ps", type=float, default=10.0, help="REMD frames before this time are dropped (ps)")
    parser.add_argument("--alpha-from", type=float, default=7.0, help="hb at which the α state begins (H-bonds)")
    parser.add_argument("--burn-in", type=float, default=free_energy.DEFAULT_BURN_IN,
                        help="metadynamics: fraction of the COLVAR frames dropped at the start")
    parser.add_argument("--out", required=True, help="output prefix: PREFIX.json and PREFIX.png")
    args = parser.parse_args()
    if not args.metad and not args.remd:
        sys.exit("give at least one --metad or --remd run")
    edges = np.arange(HB_RANGE[0], HB_RANGE[1] + BIN_WIDTH / 2, BIN_WIDTH)
    report = {"alpha_from_hb": args.alpha_from, "hb_bin_centres": [round(float(c), 3) for c in 0.5 * (edges[1:] + edges[:-1])],
              "form_bin_centres": [round(float(c), 3) for c in 0.5 * (FORM_EDGES[1:] + FORM_EDGES[:-1])],
              "map_bin_centres": [round(float(c), 3) for c in 0.5 * (MAP_EDGES[1:] + MAP_EDGES[:-1])],
              "units": {"F": "kJ/mol", "hb": "H-bonds (smooth count)", "time": "ps"}, "runs": {}}
    for label, folder in labelled(args.metad):
        report["runs"][label] = metad_run(folder, args.alpha_from, args.burn_in, edges)
    for label, folder in labelled(args.remd):
        report["runs"][label] = remd_run(folder, args.alpha_from, args.remd_skip_ps, edges)
    temperatures = {run["temperature_K"] for run in report["runs"].values()}
    if len(temperatures) != 1:
        sys.exit(f"the runs are at different temperatures: {sorted(temperatures)} K")
    report["temperature_K"] = temperatures.pop()
    # the files first: a reader that closes stdout early (| head) must not cost them
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, Path(f"{args.out}.png"))
    for label, run in report["runs"].items():
        d = run["delta_F_alpha_kJmol"]
        length = run.get("time_per_walker_ps", run.get("time_per_replica_ps"))
        print(f"{label}: {run['method']}, {length:g} ps per system, {run['frames']} frames "
              f"(effective {run['effective_frames']:g}); minimum of F at hb {run['minimum_hb']:g}, mean hb "
              f"{run['mean_hb']}; ΔF_α(hb ≥ {args.alpha_from:g}) {d['full']} kJ/mol (halves {d['first_half']}, "
              f"{d['second_half']}; blocks {run['delta_F_alpha_blocks_kJmol']})")
        if "mean_hb3" in run:
            print(f"  mean hb3 (i→i+3) {run['mean_hb3']}, mean hb − hb3 {run['mean_form']}, minimum of F(hb − hb3) at "
                  f"{run['minimum_form']:g}; ΔF of the α side (hb − hb3 ≥ {FORM_SPLIT:g}) {run['delta_F_alpha_side_kJmol']}")
            print_crossings(run["form_crossings"]["walkers"], f"hb − hb3 ≥ {FORM_ALPHA_FROM:g} ↔ ≤ {FORM_310_BELOW:g}",
                            {"alpha": "α", "away": "3₁₀"})
        print_crossings(run.get("crossings", {}).get("walkers", []),
                        f"hb ≥ {args.alpha_from:g} ↔ hb ≤ {AWAY_BELOW_HB:g}", {})
    print(f"wrote {args.out}.json and {args.out}.png")


if __name__ == "__main__":
    main()
