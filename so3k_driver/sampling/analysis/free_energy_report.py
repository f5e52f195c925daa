"""The free-energy part of ``so3k analyze``: profiles, JSON, plots (PNG) and summary.md lines.

Free energy from HILLS (kJ/mol; free_energy.png). For a metadynamics run whose COLVAR has
metad.rbias, the reweighted free energy (kJ/mol) along the biased CVs (torsions in rad, distances in
Å) with an error from the run's two halves, c(t)'s growth, and, for backbone torsions, named
Ramachandran basins with their history as the run grows and their values in separate blocks
(free_energy.json, free_energy_end_to_end.json, fes_*.png). The numerics are in free_energy.py.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from . import free_energy, plumed_files
from .observables import figure
from ..plumed_inputs import COLVAR_COLUMNS, colvar_unit

END_TO_END_FES_JSON = "free_energy_end_to_end.json"  # a run biased on another CV: its end-to-end profile
FES_TORSION_BINS = 36      # 10° bins over a torsion's period
FES_DISTANCE_BINS = 50     # bins over the visited range of a distance CV
MIN_FES_FRAMES_PER_HALF = 10
BASIN_BLOCKS = 4  # separate blocks of the kept frames in the basin stationarity table


def free_energy_profiles(run_dir: Path, temperatures):
    """[(label, cvs, grids, F kJ/mol)] per HILLS file."""
    profiles = []
    for k, (name, hills) in enumerate(plumed_files.temperature_sets(run_dir, "HILLS")):
        if len(hills.get("height", ())) == 0:
            continue
        cvs = plumed_files.hill_cvs(hills)
        torsion = [cv.startswith(("phi", "psi")) for cv in cvs]
        grids, periods = [], []
        for cv, is_torsion in zip(cvs, torsion):
            if is_torsion:
                grids.append(np.linspace(-np.pi, np.pi, 73)); periods.append(2 * np.pi)
            else:
                low, high = hills[cv].min(), hills[cv].max()
                pad = 4 * hills["sigma_" + cv].max()
                grids.append(np.linspace(max(0.0, low - pad), high + pad, 200)); periods.append(None)
        label = f"{temperatures[k]:g} K" if k < len(temperatures) else name
        profiles.append((label, cvs, grids, plumed_files.free_energy_from_hills(hills, grids, periods)))
    return profiles


def free_energy_plot(path, profiles):
    plt, fig, ax = figure(1, 1, size=(6, 4.5))
    if not profiles:
        ax.text(0.5, 0.5, "no hills deposited", ha="center", transform=ax.transAxes)
    elif len(profiles[0][1]) == 1:
        for label, cvs, grids, f in profiles:
            ax.plot(grids[0], f, label=label)
        cv = profiles[0][1][0]
        ax.set(xlabel=_axis_label(cv, colvar_unit(cv)), ylabel="free energy (kJ/mol)")
        ax.legend(fontsize=7)
    else:
        label, cvs, grids, f = profiles[0]
        image = ax.contourf(np.degrees(grids[0]), np.degrees(grids[1]), f.T, levels=20, cmap="viridis")
        fig.colorbar(image, ax=ax, label="free energy (kJ/mol)")
        ax.set(xlabel=f"{cvs[0]} (degrees)", ylabel=f"{cvs[1]} (degrees)", title=f"metadynamics FES, {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _json_number(value, digits=4):
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _json_array(values, digits=3):
    if np.ndim(values) > 1:
        return [_json_array(v, digits) for v in values]
    return [_json_number(v, digits) for v in values]


def _is_torsion(cv: str) -> bool:
    return cv.startswith(("phi", "psi"))


def _cv_label(cv: str) -> str:
    """The axis label of a COLVAR column the study's PLUMED inputs print (its name if unknown)."""
    return COLVAR_COLUMNS.get(cv, (cv, ""))[0]


def _axis_label(cv: str, unit: str) -> str:
    return f"{_cv_label(cv)} ({unit})" if unit else _cv_label(cv)


def _breakage_step(breakages, timestep_ps: float | None) -> int | None:
    """MD step of the earliest breakage (COLVAR's time column counts MD steps under i-PI), from the
    study's time step; None without breakages or without a time step (no study.json)."""
    if not breakages or timestep_ps is None:
        return None
    return int(round(min(b.time for b in breakages) / timestep_ps))  # i-PI prints time = step × time step


def _fes_edges(cvs, samples, kept: slice):
    """Bin edges per CV: 36 bins of 10° over [-π, π] for torsions (rad), 50 bins over the kept
    frames' range for a distance (Å)."""
    edges = []
    for j, cv in enumerate(cvs):
        if _is_torsion(cv):
            edges.append(np.linspace(-np.pi, np.pi, FES_TORSION_BINS + 1))
        else:
            values = samples[kept, j]
            low, high = float(values.min()), float(values.max())
            edges.append(np.linspace(low, high if high > low else low + 1.0, FES_DISTANCE_BINS + 1))
    return edges


def _fes_record(estimate: free_energy.FreeEnergyEstimate, temperature: float, colvar: str) -> dict:
    s = estimate.summary
    return {"temperature_K": temperature, "kT_kJmol": round(estimate.kT, 5), "colvar": colvar,
            "frames_total": estimate.frames_total, "burn_in_frames": estimate.frames_burn_in,
            "frames_used": estimate.frames_used, "frames_halves": list(estimate.frames_halves),
            "effective_frames": dict(zip(("used", "first_half", "second_half"),
                                         (round(n, 1) for n in estimate.effective_frames))),
            "half_difference": {"cutoff_kJmol": s.cutoff_kJmol, "max_kJmol": _json_number(s.max_kJmol),
                                "mean_kJmol": _json_number(s.mean_kJmol), "bins": s.bins,
                                "bins_missing_in_a_half": s.missing_bins}}


def _rct_growth(times, rct, ps_per_step, temperature: float, bias_factor: float | None) -> dict | None:
    """How fast c(t) (metad.bias - metad.rbias, kJ/mol) still rises: the least-squares slope over the
    last quarter of the frames, per 100 ps (per 100 000 MD steps without a study time step). A
    well-tempered bias in its long-time regime grows as c(t) ~ kB T (γ - 1) ln t, i.e. at
    kB T (γ - 1) / t; "ratio" is the slope over that rate at the quarter's mean time (≫ 1: the bias is
    still filling)."""
    quarter = slice(int(0.75 * len(times)), None)
    t, c = np.asarray(times[quarter], float), np.asarray(rct[quarter], float)
    if len(t) < 3 or np.ptp(t) == 0:
        return None
    scale = 100.0 / ps_per_step if ps_per_step else 100_000.0  # time-column units per reported interval
    slope = float(np.polyfit(t, c, 1)[0] * scale)
    growth = {"per": "100 ps" if ps_per_step else "100000 MD steps", "kJmol": round(slope, 3),
              "last_value_kJmol": round(float(c[-1]), 3)}
    if bias_factor and bias_factor > 1 and t.mean() > 0:
        expected = free_energy.thermal_energy(temperature) * (bias_factor - 1) / t.mean() * scale
        growth.update({"long_time_rate_kJmol": round(expected, 3), "ratio": round(slope / expected, 3)})
    return growth


def _biased_cvs(run_dir: Path) -> list[str]:
    """The CVs the run's METAD biases (from its PLUMED inputs, else from its HILLS); [] without metadynamics."""
    cvs = plumed_files.metad_arguments(run_dir)
    if not cvs:
        hills = plumed_files.temperature_files(run_dir, "HILLS")
        cvs = plumed_files.hill_cvs(plumed_files.read_plumed(hills[0])) if hills else []
    return cvs


def free_energy_analysis(run_dir: Path, out_dir: Path, temperatures, burn_in: float = free_energy.DEFAULT_BURN_IN,
                         cutoff: float = free_energy.DEFAULT_CUTOFF_KJMOL, breakages=()) -> tuple[list[str], list[str]]:
    """Reweighted free energies from COLVAR's metad.rbias at every temperature along the biased CVs:
    free_energy.json and, at the lowest temperature, fes_phi_psi.png (backbone) or fes_<cv>.png
    (fes_end_to_end.png). A run biased on another CV whose COLVAR has the end-to-end distance also gets
    that profile, reweighted from the same bias (the folding observable whatever the bias):
    END_TO_END_FES_JSON and fes_end_to_end.png. Returns (summary.md lines, plot names); ([], []) for a
    run without metadynamics."""
    sets = plumed_files.temperature_sets(run_dir, "COLVAR")
    biased = _biased_cvs(run_dir)
    if not sets or not biased:
        return [], []
    title = "## Free energy (reweighted metadynamics)"
    colvars, columns = [name for name, _ in sets], [data for _, data in sets]
    if not all("metad.rbias" in c for c in columns if c):
        return [title, "", "No error estimate: COLVAR has no metad.rbias column (a run from before the inputs "
                           "with CALC_RCT), so only the HILLS free energy (free_energy.png) is drawn.", ""], []
    ps_per_step = _ps_per_step(run_dir)
    limit = _breakage_step(breakages, ps_per_step)
    bias_factor = plumed_files.metad_option(run_dir, "BIASFACTOR")
    profile = functools.partial(_reweighted_profile, out_dir=out_dir, colvars=colvars, columns=columns,
                                temperatures=temperatures, burn_in=burn_in, cutoff=cutoff, limit=limit,
                                ps_per_step=ps_per_step, bias_factor=float(bias_factor) if bias_factor else None)
    lines, plots = profile(biased, title, "free_energy.json")
    if biased != ["e2e"] and any("e2e" in c for c in columns):
        more_lines, more_plots = profile(["e2e"], f"## Free energy along {_cv_label('e2e')} (reweighted from the "
                                                  f"bias on {', '.join(biased)})", END_TO_END_FES_JSON)
        lines, plots = lines + more_lines, plots + more_plots
    return lines, plots


def _reweighted_profile(cvs, title, json_name, out_dir, colvars, columns, temperatures, burn_in, cutoff,
                        limit, ps_per_step=None, bias_factor=None) -> tuple[list[str], list[str]]:
    """free_energy_analysis along ``cvs`` (COLVAR columns) from the COLVARs already read: ``json_name``,
    the plot and the summary lines under ``title``."""
    records, plots, estimates = [], [], []
    backbone = len(cvs) == 2 and all(_is_torsion(cv) for cv in cvs)
    history = blocks = halves = None  # basin free energies as the run grows, at the lowest temperature with a record
    for k, (path, data) in enumerate(zip(colvars, columns)):
        temperature = float(temperatures[k]) if k < len(temperatures) else None
        if temperature is None or not data or any(cv not in data for cv in cvs):
            continue
        rows = data["time"] < limit if limit is not None else np.ones(len(data["time"]), bool)
        samples = np.stack([free_energy.wrap_angle(data[cv][rows]) if _is_torsion(cv) else data[cv][rows]
                            for cv in cvs], axis=1)
        rbias = data["metad.rbias"][rows]
        kept = free_energy.kept_frames(len(rbias), burn_in)[0]
        if kept.stop - kept.start < 2 * MIN_FES_FRAMES_PER_HALF:
            continue
        estimate = free_energy.reweighted_free_energy(samples, rbias, temperature, _fes_edges(cvs, samples, kept),
                                                      burn_in, cutoff)
        record = _fes_record(estimate, temperature, path)
        if "metad.bias" in data:
            record["rct_growth"] = _rct_growth(data["time"][rows], data["metad.bias"][rows] - rbias, ps_per_step,
                                               temperature, bias_factor)
        if backbone:
            phi, psi = np.degrees(samples[:, 0]), np.degrees(samples[:, 1])
            basins, reference = free_energy.basin_free_energies(phi, psi, rbias, temperature, burn_in)
            found = [b for b in basins if b.found]
            if not records:
                history = _basin_history(phi, psi, rbias, data["time"][rows], temperature, burn_in,
                                         [b.name for b in found], ps_per_step)
                blocks = _basin_blocks(phi, psi, rbias, data["time"][rows], temperature, burn_in,
                                       [b.name for b in found], ps_per_step)
                halves = _half_difference_history(phi, psi, rbias, data["time"][rows], temperature, burn_in,
                                                  [b.name for b in found], ps_per_step)
            # a found basin that one half never visited has no finite difference: the maximum is then undefined
            differences = [b.half_difference for b in found]
            worst = None if None in differences or not differences else max(differences)
            record.update({
                "reference_basin": reference,
                "basins": {b.name: {"fraction": round(b.fraction, 5), "F_kJmol": _json_number(b.F_kJmol),
                                    "F_first_half": _json_number(b.F_first_half),
                                    "F_second_half": _json_number(b.F_second_half),
                                    "half_difference": _json_number(b.half_difference)} for b in found},
                "basins_not_found": {b.name: round(b.fraction, 5) for b in basins if not b.found},
                "basins_missing_in_a_half": [b.name for b in found if b.half_difference is None],
                "max_basin_half_difference_kJmol": _json_number(worst)})
        elif len(cvs) == 1:
            if not records:
                ends, largest, mean = free_energy.profile_half_difference_history(
                    samples, rbias, temperature, estimate.edges, burn_in, cutoff)
                record["half_difference_history"] = {
                    "time": _json_array(data["time"][rows][ends] * (ps_per_step or 1.0), 3),
                    "time_unit": "ps" if ps_per_step else "MD step",
                    "max_kJmol": _json_array(largest), "mean_kJmol": _json_array(mean)}
            key = "minimum_rad" if _is_torsion(cvs[0]) else "minimum_A" if colvar_unit(cvs[0]) == "Å" else "minimum"
            record.update({key: round(estimate.minimum[0], 3),
                           "profile": {cvs[0]: _json_array(estimate.centres[0], 4),
                                       "F_kJmol": _json_array(estimate.full),
                                       "F_first_half": _json_array(estimate.first),
                                       "F_second_half": _json_array(estimate.second)}})
        records.append(record)
        estimates.append(estimate)
    if not records:
        return [title, "", f"No free energy yet: fewer than {2 * MIN_FES_FRAMES_PER_HALF} COLVAR frames after the "
                           f"burn-in ({burn_in:.0%} of the frames) at every temperature.", ""], []
    lowest, estimate = records[0], estimates[0]
    unit = "rad" if all(_is_torsion(cv) for cv in cvs) else colvar_unit(cvs[0])
    document = {"method": "histogram of COLVAR frames weighted by exp(metad.rbias / kT) (Tiwary-Parrinello); "
                          "error from the first and second half of the frames kept after the burn-in",
                "cvs": cvs, "cv_unit": unit, "burn_in_fraction": burn_in, "cutoff_kJmol": cutoff,
                "bins": [len(e) - 1 for e in estimate.edges],
                "units": {"F, kT, half_difference": "kJ/mol", "temperature_K": "K", "CV values": unit,
                          "basin centres": "degrees", "fraction": "weight fraction of the kept frames"},
                **lowest, "per_temperature": records}
    if backbone:
        document["basin_table"] = {b.name: {"phi_deg": b.phi, "psi_deg": b.psi, "radius_deg": b.radius}
                                   for b in free_energy.RAMACHANDRAN_BASINS}
        document["surface"] = {"phi_deg": _json_array(np.degrees(estimate.centres[0]), 2),
                               "psi_deg": _json_array(np.degrees(estimate.centres[1]), 2),
                               "F_kJmol": _json_array(estimate.full)}
        plots.append("fes_phi_psi.png")
        _fes_2d_plot(out_dir / plots[-1], estimate, cvs, lowest, cutoff)
        if blocks is not None:
            document["basin_blocks"] = blocks
        if halves is not None:
            document["half_difference_history"] = halves
        if history is not None:
            document["basin_history"] = history
            plots.append("fes_basin_history.png")
            _basin_history_plot(out_dir / plots[-1], history, blocks, halves, lowest["temperature_K"])
    elif len(cvs) == 1:
        plots.append("fes_end_to_end.png" if cvs[0] == "e2e" else f"fes_{cvs[0]}.png")
        _fes_1d_plot(out_dir / plots[-1], estimate, cvs[0], unit, lowest["temperature_K"])
    (out_dir / json_name).write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    return _fes_markdown(title, document, records, backbone, unit, limit), plots


def _ps_per_step(run_dir: Path) -> float | None:
    """The study's time step in ps (COLVAR's time column counts MD steps under i-PI), None without study.json."""
    from ..settings import StudySettings

    settings = StudySettings.load_if_present(run_dir)
    return settings.timestep_fs * 1e-3 if settings else None


def _basin_history(phi, psi, rbias, times, temperature, burn_in, found, ps_per_step) -> dict | None:
    """free_energy.basin_history of the found basins (names), as JSON: time (ps, or MD steps without a
    study time step; ``times`` is COLVAR's time column), F per basin (kJ/mol, null before a first visit)
    and the largest spread of a basin's F over the last quarter of the run ("drift", kJ/mol)."""
    ends, F = free_energy.basin_history(phi, psi, rbias, temperature, burn_in)
    if len(ends) < 4:
        return None
    names = [b.name for b in free_energy.RAMACHANDRAN_BASINS]
    columns = [names.index(name) for name in found]
    last_quarter = F[int(0.75 * len(ends)):, columns]
    drift = np.nanmax(last_quarter, axis=0) - np.nanmin(last_quarter, axis=0)
    return {"time": _json_array(times[ends] * (ps_per_step or 1.0), 3), "time_unit": "ps" if ps_per_step else "MD step",
            "F_kJmol": {names[b]: _json_array(F[:, b]) for b in columns},
            "drift_last_quarter_kJmol": {names[b]: _json_number(float(d)) for b, d in zip(columns, drift)}}


def _half_difference_history(phi, psi, rbias, times, temperature, burn_in, found, ps_per_step) -> dict | None:
    """free_energy.half_difference_history of the found basins, as JSON: run length (ps, or MD steps), each
    basin's half difference (kJ/mol, null where a half misses it) and the largest per length."""
    ends, differences = free_energy.half_difference_history(phi, psi, rbias, temperature, burn_in)
    if len(ends) < 4:
        return None
    names = [b.name for b in free_energy.RAMACHANDRAN_BASINS]
    columns = [names.index(name) for name in found]
    largest = [None if np.isnan(row[columns]).any() else _json_number(float(np.max(row[columns])))
               for row in differences]
    return {"time": _json_array(times[ends] * (ps_per_step or 1.0), 3), "time_unit": "ps" if ps_per_step else "MD step",
            "half_difference_kJmol": {names[b]: _json_array(differences[:, b]) for b in columns},
            "largest_kJmol": largest}


def _basin_blocks(phi, psi, rbias, times, temperature, burn_in, found, ps_per_step, blocks: int = BASIN_BLOCKS):
    """free_energy.basin_blocks of the found basins, as JSON: block edges in time (ps, or MD steps), F per
    block and basin (kJ/mol, null where a block never visits the basin) and each basin's spread over
    the blocks (max - min, kJ/mol; null when a block misses the basin). None when a block would hold
    fewer than MIN_FES_FRAMES_PER_HALF / 2 frames."""
    kept = free_energy.kept_frames(len(rbias), burn_in)[0]
    if (kept.stop - kept.start) < blocks * MIN_FES_FRAMES_PER_HALF // 2:
        return None
    edges, F = free_energy.basin_blocks(phi, psi, rbias, temperature, burn_in, blocks)
    names = [b.name for b in free_energy.RAMACHANDRAN_BASINS]
    columns = [names.index(name) for name in found]
    scale = ps_per_step or 1.0
    time_edges = [float(times[min(k, len(times) - 1)]) * scale for k in edges]
    spread = {names[b]: (None if np.isnan(F[:, b]).any() else _json_number(float(np.ptp(F[:, b])))) for b in columns}
    return {"blocks": blocks, "time_edges": _json_array(np.array(time_edges), 3),
            "time_unit": "ps" if ps_per_step else "MD step",
            "F_kJmol": {names[b]: _json_array(F[:, b]) for b in columns}, "spread_kJmol": spread}


def _basin_history_plot(path, history, blocks, halves, temperature):
    panels = 1 + bool(blocks) + bool(halves)
    plt, fig, axes = figure(1, panels, (5.5 * panels + 1, 4))
    axes = np.atleast_1d(axes)
    axis = axes[0]
    for name, values in history["F_kJmol"].items():
        values = np.array([np.nan if v is None else v for v in values], float)
        axis.plot(history["time"], values, "o-", ms=3, label=f"{name} (last-quarter drift "
                  f"{history['drift_last_quarter_kJmol'][name]:.2f} kJ/mol)")
    axis.set(xlabel=f"end of the frames used ({history['time_unit']})",
             ylabel="F of the basin − F of the most populated (kJ/mol)",
             title=f"basin free energies as the run grows, {temperature:g} K")
    axis.legend(fontsize=7)
    if blocks:
        edges = np.array(blocks["time_edges"], float)
        centres = 0.5 * (edges[:-1] + edges[1:])
        for name, values in blocks["F_kJmol"].items():
            values = np.array([np.nan if v is None else v for v in values], float)
            spread = blocks["spread_kJmol"][name]
            axes[1].plot(centres, values, "s-", ms=4, label=f"{name} (spread " + (
                "–" if spread is None else f"{spread:.2f}") + " kJ/mol)")
        for edge in edges:
            axes[1].axvline(edge, color="0.85", lw=0.8, zorder=0)
        axes[1].set(xlabel=f"block centre ({blocks['time_unit']})", ylabel="F of the basin within the block (kJ/mol)",
                    title=f"{blocks['blocks']} separate blocks after the burn-in")
        axes[1].legend(fontsize=7)
    if halves:
        axis = axes[-1]
        for name, values in halves["half_difference_kJmol"].items():
            values = np.array([np.nan if v is None else v for v in values], float)
            axis.plot(halves["time"], values, "o-", ms=3, label=name)
        axis.set(xlabel=f"run length analysed ({halves['time_unit']})",
                 ylabel="|F first half − F second half| (kJ/mol)", ylim=(0, None),
                 title="the two-halves test had the run stopped there")
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _minimum(record):
    return record.get("minimum_A", record.get("minimum_rad", record.get("minimum")))


def _fes_markdown(title, document, records, backbone, unit, limit) -> list[str]:
    r = records[0]
    h = r["half_difference"]
    lines = [title, "",
             f"{r['temperature_K']:g} K (kT = {r['kT_kJmol']:.3f} kJ/mol), CVs {', '.join(document['cvs'])}: "
             f"{r['frames_used']} COLVAR frames used after a burn-in of {r['burn_in_frames']} "
             f"({document['burn_in_fraction']:.0%}); halves of {r['frames_halves'][0]} and "
             f"{r['frames_halves'][1]} frames "
             f"(effective sizes after weighting: {r['effective_frames']['first_half']:.0f} and "
             f"{r['effective_frames']['second_half']:.0f})."]
    if limit is not None:
        lines.append(f"COLVAR frames from MD step {limit} on (a configuration broke apart) are left out.")
    if backbone:
        lines += ["", "| basin | weight fraction | F (kJ/mol) | F first half | F second half | half difference (kJ/mol) |",
                  "|---|---|---|---|---|---|"]
        for name, b in r["basins"].items():
            cells = ["–" if v is None else f"{v:.2f}" for v in (b["F_kJmol"], b["F_first_half"], b["F_second_half"],
                                                                b["half_difference"])]
            lines.append(f"| {name} | {b['fraction']:.3f} | " + " | ".join(cells) + " |")
        worst = r["max_basin_half_difference_kJmol"]
        missing = r["basins_missing_in_a_half"]
        lines += ["", f"Basins: F_B = -kT ln(weight in B / total), relative to {r['reference_basin']} in the full run "
                      f"(circles of 40° around literature centres, see free_energy.json); found = more than "
                      f"{free_energy.MIN_BASIN_FRACTION:.1%} of the weight. Largest basin half difference: "
                      + (f"undefined, {', '.join(missing)} visited by only one half" if missing
                         else "– (no basin found)" if worst is None else f"{worst:.2f} kJ/mol") + "."]
        if r["basins_not_found"]:
            lines.append("Not found: " + ", ".join(f"{k} ({v:.2%})" for k, v in r["basins_not_found"].items()) + ".")
        history = document.get("basin_history")
        if history:
            drift = {k: v for k, v in history["drift_last_quarter_kJmol"].items() if v is not None}
            if drift:
                name = max(drift, key=drift.get)
                lines.append(f"As the run grew ([fes_basin_history.png](fes_basin_history.png)), the basin free "
                             f"energies moved by at most {drift[name]:.2f} kJ/mol ({name}) over its last quarter.")
        halves = document.get("half_difference_history")
        if halves:
            shown = [(t, v) for t, v in zip(halves["time"], halves["largest_kJmol"])][-5:]
            lines.append("Largest basin half difference had the run stopped earlier: " + ", ".join(
                f"{'–' if v is None else f'{v:.2f}'} at {t:.0f} {halves['time_unit']}" for t, v in shown)
                + " kJ/mol (the last is this analysis).")
        blocks = document.get("basin_blocks")
        if blocks:
            edges = blocks["time_edges"]
            lines += ["", f"In {blocks['blocks']} separate blocks after the burn-in (each basin's F within the block, "
                          f"kJ/mol; a block far from the others means the sampling left that basin for a while):", "",
                      "| basin | " + " | ".join(f"{a:.0f}–{b:.0f} {blocks['time_unit']}" for a, b in zip(edges[:-1], edges[1:]))
                      + " | spread |", "|---|" + "---|" * (len(edges))]
            for name, values in blocks["F_kJmol"].items():
                spread = blocks["spread_kJmol"][name]
                lines.append(f"| {name} | " + " | ".join("–" if v is None else f"{v:.2f}" for v in values)
                             + " | " + ("–" if spread is None else f"{spread:.2f}") + " |")
            lines.append("")
    elif _minimum(r) is not None:
        lines.append(f"Minimum of F at {_minimum(r):.2f} {unit}.")
        history = r.get("half_difference_history")
        if history:
            shown = list(zip(history["time"], history["max_kJmol"], history["mean_kJmol"]))[-5:]
            lines.append("Half difference of the profile (max / mean over its region) had the run stopped earlier: "
                         + ", ".join(("–" if m is None else f"{m:.1f} / {a:.1f}") + f" at {t:.0f} {history['time_unit']}"
                                     for t, m, a in shown) + " kJ/mol (the last is this analysis).")
    growth = r.get("rct_growth")
    if growth:
        text = (f"c(t), the bias's offset in the reweighting, was {growth['last_value_kJmol']:.1f} kJ/mol at the end and "
                f"rose by {growth['kJmol']:.2f} kJ/mol per {growth['per']} over the last quarter of the frames")
        if "ratio" in growth:
            text += (f"; a well-tempered bias in its long-time regime rises as kB T (γ - 1) ln t, "
                     f"{growth['long_time_rate_kJmol']:.2f} kJ/mol per {growth['per']} at that time "
                     f"(ratio {growth['ratio']:.2f}; " + ("well above 1: the bias is still filling)" if growth["ratio"] > 1.5
                                                       else "near or below 1: the bias grows as in its long-time regime)"))
        lines.append(text + ".")
    region = (f"max {h['max_kJmol']:.2f}, mean {h['mean_kJmol']:.2f} kJ/mol over {h['bins']} bins"
              if h["max_kJmol"] is not None else "no bin visited by both halves")
    lines += [f"Surface: |F_first - F_second| where the full-run F < {h['cutoff_kJmol']:g} kJ/mol: {region}"
              f" ({h['bins_missing_in_a_half']} such bins visited by only one half are left out)."]
    for other in records[1:]:
        o = other["half_difference"]
        text = f"- {other['temperature_K']:g} K: {other['frames_used']} frames, surface half difference max " + (
            "–" if o["max_kJmol"] is None else f"{o['max_kJmol']:.2f}, mean {o['mean_kJmol']:.2f} kJ/mol")
        if backbone and other["max_basin_half_difference_kJmol"] is not None:
            text += f"; largest basin half difference {other['max_basin_half_difference_kJmol']:.2f} kJ/mol"
        elif _minimum(other) is not None:
            text += f"; minimum at {_minimum(other):.2f} {unit}"
        lines.append(text)
    return lines + [""]


def _fes_2d_plot(path, estimate, cvs, record, cutoff):
    plt, fig, (left, right) = figure(1, 2, size=(11, 4.6))
    phi, psi = (np.degrees(e) for e in estimate.edges)
    full = np.ma.masked_invalid(np.where(estimate.full <= cutoff, estimate.full, np.nan))
    image = left.pcolormesh(phi, psi, full.T, cmap="viridis", vmin=0, vmax=cutoff, shading="flat")
    fig.colorbar(image, ax=left, label="free energy (kJ/mol)")
    signed = np.full(estimate.full.shape, np.nan)
    signed[estimate.region] = estimate.second[estimate.region] - estimate.first[estimate.region]
    span = max(2.0, float(np.nanmax(np.abs(signed)))) if np.isfinite(signed).any() else 2.0
    image = right.pcolormesh(phi, psi, np.ma.masked_invalid(signed).T, cmap="RdBu_r", vmin=-span, vmax=span,
                             shading="flat")
    fig.colorbar(image, ax=right, label="F second half − F first half (kJ/mol)")
    found = record.get("basins", {})
    for ax in (left, right):
        for b in free_energy.RAMACHANDRAN_BASINS:
            visited = b.name in found
            colour = ("white" if ax is left else "black") if visited else "grey"
            style = dict(ec=colour, lw=1.0 if visited else 0.6, ls="-" if visited else ":")
            for shift_phi in (-360, 0, 360):  # the plane is periodic: a circle near ±180° shows on both sides
                for shift_psi in (-360, 0, 360):
                    ax.add_patch(plt.Circle((b.phi + shift_phi, b.psi + shift_psi), b.radius, fill=False, **style))
            ax.text(b.phi, b.psi, b.name, ha="center", va="center", fontsize=7, color=colour,
                    fontweight="bold" if visited else "normal")
        ax.set(xlim=(-180, 180), ylim=(-180, 180), xlabel=f"{cvs[0]} (degrees)", ylabel=f"{cvs[1]} (degrees)")
        ax.set_aspect("equal")
    left.set_title(f"reweighted FES, {record['temperature_K']:g} K, {record['frames_used']} frames", fontsize=9)
    right.set_title(f"halves' difference where F < {cutoff:g} kJ/mol", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fes_1d_plot(path, estimate, cv, unit, temperature):
    plt, fig, ax = figure(1, 1, size=(6.5, 4.5))
    x = estimate.centres[0]
    ax.fill_between(x, np.where(np.isfinite(estimate.first), estimate.first, np.nan),
                    np.where(np.isfinite(estimate.second), estimate.second, np.nan), color="tab:orange", alpha=0.3,
                    lw=0, label="between the two halves")
    ax.plot(x, estimate.first, "--", color="tab:orange", lw=0.8, label="first half")
    ax.plot(x, estimate.second, ":", color="tab:red", lw=0.8, label="second half")
    ax.plot(x, estimate.full, color="black", lw=1.4, label="all kept frames")
    finite = estimate.full[np.isfinite(estimate.full)]
    ax.set(xlabel=_axis_label(cv, unit), ylabel="free energy (kJ/mol)",
           title=f"reweighted free energy, {temperature:g} K", ylim=(-1, max(5.0, float(finite.max()) + 1)))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
