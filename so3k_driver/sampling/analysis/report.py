"""``so3k analyze RUN_DIR``: per-temperature observables, plots (PNG) and a markdown summary.

``analyze()`` drives the analysis: observables and their plots (observables.py: end-to-end distance
and radius of gyration in Å, helix fraction, phi/psi in degrees); free energy from HILLS (kJ/mol)
and, for a metadynamics run whose COLVAR has metad.rbias, the reweighted free energy with an error
from the run's two halves and, for backbone torsions, named Ramachandran basins
(free_energy_report.py; free_energy.json, fes_*.png) and the unbiased averages of the helix fraction,
end-to-end distance and radius of gyration, each trajectory frame reweighted by its bias
(reweighted_observables.py); replica-exchange statistics; for a committee
model, its uncertainty over time (uncertainty.py); the vibrational spectrum; the optional checks
against a reference model (end states, end_states.py; the energy error along the end-to-end distance,
energy_error_profile.py); and summary.md / summary.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import (end_states, energy_error_profile, free_energy, ipi_outputs, plumed_files, replica_exchange,
               reweighted_observables, spectrum, uncertainty)
from .free_energy_report import free_energy_analysis, free_energy_plot, free_energy_profiles
from .observables import helix_plot, observables, ramachandran_plot, series_plot
from ..settings import StudySettings
from ..study_lock import holder
from ...errors import UserError

PLOTS = ("end_to_end.png", "radius_of_gyration.png", "helix_fraction.png", "free_energy.png", "ramachandran.png")


def _study_temperatures(run_dir: Path, data) -> list[float]:
    """Temperatures (K) in the order of the COLVAR.T<k> suffixes: study.json's, or the demultiplexed ones."""
    settings = StudySettings.load_if_present(run_dir)
    return list(settings.temperatures) if settings else [d.temperature for d in data]


def _exchange_statistics(run_dir: Path, data):
    """(replica_exchange.ExchangeStatistics, ps per MD step or None) of a replica-exchange run, else None.
    The stride comes from study.json or the run's input.xml; steps and time from the first properties file."""
    from ...ipi import ipi_xml

    if len(data) < 2:
        return None
    stride = None
    settings = StudySettings.load_if_present(run_dir)
    if settings:
        stride = float(settings.exchange_stride)
    elif (run_dir / "input.xml").is_file():
        stride = ipi_xml.exchange_stride(ipi_xml.load(str(run_dir / "input.xml")).getroot())
    properties = ipi_outputs.read_properties(ipi_outputs.find_systems(run_dir)[0][0])
    steps = int(properties["step"][-1]) if len(properties["step"]) else 0
    stats = replica_exchange.exchange_statistics(run_dir, _study_temperatures(run_dir, data), steps, stride)
    return (stats, ipi_outputs.timestep_ps(properties)) if stats is not None else None


def _reweighted_observables(run_dir: Path, out_dir: Path, data, series, burn_in: float) -> list[str]:
    """reweighted_observables.analysis for a metadynamics run (COLVARs with metad.rbias); [] otherwise."""
    sets = plumed_files.temperature_sets(run_dir, "COLVAR")
    if not sets:
        return []
    systems = ipi_outputs.find_systems(run_dir)
    ps_per_step = ipi_outputs.timestep_ps(ipi_outputs.read_properties(systems[0][0]))
    if not ps_per_step:
        return []
    temperatures = _study_temperatures(run_dir, data)
    colvars = {round(float(t), 3): columns for t, (_, columns) in zip(temperatures, sets)}
    walkers = None
    if len(data) == 1 and len(systems) > 1 and series[0].system is not None:
        walkers = (series[0].system, [ipi_outputs.system_name(properties) for properties, _ in systems])
    return reweighted_observables.analysis(data, [s.bias for s in series], colvars, ps_per_step, out_dir, burn_in,
                                           walkers)


def analyze(run_dir: Path, out_dir: Path | None = None,
            uncertainty_threshold: float = uncertainty.DEFAULT_THRESHOLD_MEV_PER_A,
            burn_in: float = free_energy.DEFAULT_BURN_IN, fes_cutoff: float = free_energy.DEFAULT_CUTOFF_KJMOL,
            reference: str | None = None, model: str | None = None, end_state_count: int = end_states.DEFAULT_COUNT,
            reference_dtype: str = end_states.DEFAULT_REFERENCE_DTYPE,
            profile_frames: int = energy_error_profile.DEFAULT_FRAMES, trajectories: bool = False,
            report=print) -> Path:
    """Write the plots and summary.md into out_dir (default run_dir/analysis); returns the summary path.

    uncertainty_threshold (meV/Å): a committee run's frames whose largest per-atom force spread
    exceeds it are flagged (plot and summary); a run without committee uncertainty gets neither.
    burn_in: fraction of the COLVAR frames dropped before the reweighted free energies; fes_cutoff
    (kJ/mol): the free-energy region in which the two halves are compared (free_energy.json).
    reference: a model spec (e.g. so3lr:DIR, evaluated gas phase with all pairs in reference_dtype)
    against which the end states of the lowest temperature are checked (end_states.py; end_state_count
    frames per state, 0: none); the run's own model is ``model``, or the one in the study's study.json.
    With it, ``profile_frames`` frames spread over the lowest temperature give the model's energy error
    along the end-to-end distance (energy_error_profile.py; 0: none). trajectories: also write one extxyz
    per temperature (ipi_outputs.write_temperature_trajectories). report(line): progress of these checks."""
    threshold = uncertainty.check_threshold(uncertainty_threshold)
    try:
        free_energy.check_burn_in(burn_in)
    except ValueError as error:
        raise UserError(str(error)) from None
    if not (isinstance(fes_cutoff, (int, float)) and np.isfinite(fes_cutoff) and fes_cutoff > 0):
        raise UserError(f"free-energy cutoff must be > 0 kJ/mol, got {fes_cutoff!r}")
    run_dir = Path(run_dir)
    if reference is not None:  # a bad request fails before the analysis, not after it
        if end_state_count != 0:
            end_states.check_count(end_state_count)
        energy_error_profile.check_frames(profile_frames)
        run_model = _run_model(run_dir, model)
    out_dir = Path(out_dir) if out_dir else run_dir / "analysis"
    out_dir.mkdir(parents=True, exist_ok=True)
    symbols, series, breakages = ipi_outputs.demultiplex(run_dir)
    data = observables(symbols, series)
    if trajectories:
        written = ipi_outputs.write_temperature_trajectories(out_dir, symbols, series)
        report(f"wrote {len(written)} trajectories, one per temperature: {', '.join(p.name for p in written)}")
    series_plot(out_dir / "end_to_end.png", data, "end_to_end", "end-to-end distance (Å)")
    series_plot(out_dir / "radius_of_gyration.png", data, "gyration", "radius of gyration (Å)")
    helix_plot(out_dir / "helix_fraction.png", data)
    profiles = free_energy_profiles(run_dir, [d.temperature for d in data])
    free_energy_plot(out_dir / "free_energy.png", profiles)
    ramachandran_plot(out_dir / "ramachandran.png", data)
    exchanges = _exchange_statistics(run_dir, data)
    if exchanges is not None:
        replica_exchange.plot(out_dir / replica_exchange.PLOT, *exchanges)
    hills = {p.name: len(plumed_files.read_plumed(p).get("height", ()))
             for p in plumed_files.temperature_files(run_dir, "HILLS")}
    replicas = uncertainty.replica_uncertainties(run_dir)
    committee = uncertainty.summary(replicas, threshold) if replicas else None
    if replicas:
        uncertainty.plot(out_dir / uncertainty.PLOT, replicas, threshold)
    fes_lines, fes_plots = free_energy_analysis(run_dir, out_dir, _study_temperatures(run_dir, data), burn_in,
                                                fes_cutoff, breakages)
    fes_lines = fes_lines + _reweighted_observables(run_dir, out_dir, data, series, burn_in)
    summary = _write_summary(out_dir, run_dir, data, exchanges, hills, breakages, committee, fes_lines, fes_plots,
                             series)
    # Vibrational spectrum when velocities (or positions) are written often enough; one summary line either way.
    with summary.open("a") as handle:
        handle.write("\n" + spectrum.write_spectrum(run_dir, out_dir) + "\n")
    if reference is not None:
        potentials = _load_pair(run_model, reference, reference_dtype, report)
        if end_state_count:
            record = _end_state_check(symbols, series[0], data[0], potentials, end_state_count, burn_in, report)
            end_states.write(out_dir, record)
            with summary.open("a") as handle:
                handle.write("\n" + "\n".join(end_states.markdown(record)))
        if profile_frames:
            record = _energy_error_profile(symbols, series[0], data[0], potentials, profile_frames, burn_in, report)
            if record is None:
                lines = [f"Energy-error profile: skipped, {len(series[0].positions)} frames at the lowest temperature "
                         f"({energy_error_profile.MINIMUM_FRAMES} needed after the burn-in).", ""]
            else:
                settings = StudySettings.load_if_present(run_dir)
                record["sampled_by"] = list(settings.sampling_models) if settings else None
                energy_error_profile.write(out_dir, record)
                lines = energy_error_profile.markdown(record)
            with summary.open("a") as handle:
                handle.write("\n" + "\n".join(lines))
    return summary


def _run_model(run_dir: Path, model: str | None) -> tuple[str, str | None, float | None]:
    """(spec, dtype, lr_cutoff) of the run's model: ``model`` as given (gas phase, all pairs), or the
    study's from its study.json."""
    if model is not None:
        return model, None, None
    settings = StudySettings.load_if_present(run_dir)
    if settings is None:
        raise UserError(f"{run_dir} has no study.json: name the run's model with --model to compare end states")
    return settings.model, settings.dtype, settings.lr_cutoff


def _load_pair(run_model, reference, reference_dtype, report) -> dict:
    """{label: (spec, Potential)} for the run's model (``run_model``: spec, dtype, lr_cutoff) and the
    reference, gas phase with SO3LR's long-range terms over all pairs."""
    from ...evaluation.potential import Potential

    model, dtype, lr_cutoff = run_model
    report(f"reference checks: loading {model} and {reference}")
    return {"model": (model, Potential.load(model, dtype=dtype, lr_cutoff=lr_cutoff)),
            "reference": (reference, Potential.load(reference, dtype=reference_dtype, lr_cutoff=None))}


def _end_state_check(symbols, lowest, observed, potentials, count, burn_in, report):
    """end_states.compare_end_states on the lowest temperature's frames."""
    (model, model_potential), (reference, reference_potential) = potentials["model"], potentials["reference"]
    return end_states.compare_end_states(ipi_outputs.atomic_numbers_of(symbols), lowest.positions, lowest.time, observed.helix_torsion,
                                         lowest.temperature, model_potential, reference_potential, model, reference,
                                         count=count, burn_in=burn_in, report=report)


def _energy_error_profile(symbols, lowest, observed, potentials, count, burn_in, report) -> dict | None:
    """energy_error_profile.profile on ``count`` frames spread over the lowest temperature after the burn-in;
    None when too few frames are left."""
    if not energy_error_profile.enough_frames(len(lowest.positions), burn_in):
        return None
    chosen = energy_error_profile.spread_frames(len(lowest.positions), burn_in, count)
    positions = np.asarray(lowest.positions)[chosen]
    numbers = ipi_outputs.atomic_numbers_of(symbols)
    points = {}
    for key, (label, potential) in potentials.items():
        report(f"energy-error profile: {len(chosen)} frames at {lowest.temperature:g} K with {label} (single points)")
        points[key] = energy_error_profile.single_points(potential, numbers, positions)
    end_to_end, helix = observed.end_to_end[chosen], observed.helix_torsion[chosen]
    record = energy_error_profile.profile(end_to_end, helix, points["model"]["energy"], points["reference"]["energy"])
    record.update(energy_error_profile.term_split(end_to_end, helix, points["model"], points["reference"]) or {})
    record.update({"temperature_K": float(lowest.temperature), "model": potentials["model"][0],
                   "reference": potentials["reference"][0], "reference_dtype": potentials["reference"][1].dtype,
                   "frame_indices": chosen.tolist(), "time_ps": np.asarray(lowest.time)[chosen].round(4).tolist()})
    return record


def _walker_table(run_dir: Path, series, data) -> tuple[list[str], list[dict]]:
    """Each walker's own path (summary.md lines, summary.json rows): end-to-end distance and helix
    fraction at its first and last frame, and the extremes it reached."""
    lines = ["| walker | frames | end-to-end first → last (Å) | shortest end-to-end (Å) | helix fraction, torsions, "
             "first → last | highest helix fraction |", "|---|---|---|---|---|---|"]
    rows = []
    for k, (properties_file, _) in enumerate(ipi_outputs.find_systems(run_dir)):
        mine = series[0].system == k
        if not mine.any():
            continue
        e2e, helix = data[0].end_to_end[mine], data[0].helix_torsion[mine]
        name = ipi_outputs.system_name(properties_file)
        lines.append(f"| {name} | {int(mine.sum())} | {e2e[0]:.1f} → {e2e[-1]:.1f} | {e2e.min():.1f} | "
                     f"{helix[0]:.2f} → {helix[-1]:.2f} | {helix.max():.2f} |")
        rows.append({"walker": name, "frames": int(mine.sum()), "end_to_end_first_A": round(float(e2e[0]), 2),
                     "end_to_end_last_A": round(float(e2e[-1]), 2), "end_to_end_min_A": round(float(e2e.min()), 2),
                     "helix_fraction_first": round(float(helix[0]), 3), "helix_fraction_last": round(float(helix[-1]), 3),
                     "helix_fraction_max": round(float(helix.max()), 3)})
    return lines + [""], rows


def run_history(run_dir: Path) -> dict | None:
    """Which models ran the study, and what its logged pieces (pieces.jsonl) add up to; None without study.json.
    ``line``: the summary sentence."""
    from .. import pieces

    settings = StudySettings.load_if_present(run_dir)
    if settings is None:
        return None
    models = [(entry["model"], entry["until_step"]) for entry in settings.earlier_models] + [(settings.model, None)]
    ranges, first = [], 0
    for model, until in models:
        ranges.append(f"{model} (steps {first:,}–{until:,})" if until is not None else
                      (f"{model} (from step {first:,})" if first else model))
        first = until if until is not None else first
    history = pieces.read_pieces(run_dir)
    running = pieces.running_piece(history, lock_held=holder(run_dir) is not None) is not None
    logged = pieces.history_summary(history, settings.timestep_fs, running=running)
    line = f"Model: {', then '.join(ranges)}{f' ({settings.dtype})' if settings.dtype else ''}."
    if logged:
        line += (f" {logged['pieces']} piece{'s' if logged['pieces'] > 1 else ''} logged in {pieces.PIECES_FILE}"
                 + (f" ({logged['killed']} killed before they could stop)" if logged["killed"] else "")
                 + (" (the last still running, not counted below)" if running and logged["pieces"] > 1 else "")
                 + (", still running" if running and logged["pieces"] == 1 else
                    f": {logged['ended_steps']:,} steps in {logged['ended_wall_s'] / 3600:.2f} h of wall time")
                 + (f", {logged['ps_per_hour']:.1f} ps per hour per system" if logged["ps_per_hour"] else "")
                 + (f" (the {logged['first_step']:,} steps before the first logged piece are not counted)"
                    if logged["first_step"] else "") + ".")
    return {"models": [{"model": m, "until_step": u} for m, u in models], "pieces": logged, "line": line}


def _write_summary(out_dir, run_dir, data, exchanges, hills, breakages=(), committee=None, fes_lines=(),
                   fes_plots=(), series=None) -> Path:
    walkers = len(ipi_outputs.find_systems(run_dir)) if len(data) == 1 else 1
    lines = [f"# Sampling analysis of `{run_dir}`", "",
             f"Frames per temperature: {', '.join(str(len(d.time)) for d in data)}; "
             f"simulated time per replica: {data[0].time[-1]:.3f} ps.", ""]
    history = run_history(run_dir)
    if history:
        lines += [history["line"], ""]
    walker_rows = None
    if walkers > 1:
        lines += [f"{walkers} walkers at one temperature, building one metadynamics bias together: their frames "
                  "(and COLVARs) are pooled in time order below. Each walker's own path:", ""]
        if series is not None and series[0].system is not None:
            walker_lines, walker_rows = _walker_table(run_dir, series, data)
            lines += walker_lines
    for b in breakages:
        lines += [f"**Warning: configuration {b.system} broke apart** at {b.time:.2f} ps while at {b.temperature:g} K "
                  f"({b.fragments} bonded fragments): the model left the region it describes. Its {b.excluded_frames} "
                  "frames from then on are left out of everything below; continue only from a restart before that "
                  "time, or with a model trained on such geometries.", ""]
    if exchanges:
        lines += replica_exchange.markdown(*exchanges) + [f"Plot: [{replica_exchange.PLOT}]({replica_exchange.PLOT})", ""]
    if hills:
        lines.append("Hills deposited: " + ", ".join(f"{k}: {v}" for k, v in hills.items()) + ".")
    lines += ["", "| T (K) | end-to-end first→last (Å) | mean end-to-end (Å) | mean Rg (Å) | helix fraction, torsions | "
              "helix fraction, i→i+4 H-bonds (α) | i→i+3 H-bonds (3₁₀) | helix fraction, last 25 % |",
              "|---|---|---|---|---|---|---|---|"]
    summary = []
    for d in data:
        tail = d.helix_torsion[int(0.75 * len(d.helix_torsion)):]
        lines.append(f"| {d.temperature:g} | {d.end_to_end[0]:.1f} → {d.end_to_end[-1]:.1f} | {d.end_to_end.mean():.1f} | "
                     f"{d.gyration.mean():.2f} | {d.helix_torsion.mean():.2f} | {d.helix_hbond.mean():.2f} | "
                     f"{d.three_ten_hbond.mean():.2f} | {tail.mean():.2f} |")
        summary.append({"temperature_K": d.temperature, "end_to_end_first_A": float(d.end_to_end[0]),
                        "end_to_end_last_A": float(d.end_to_end[-1]), "end_to_end_mean_A": float(d.end_to_end.mean()),
                        "gyration_mean_A": float(d.gyration.mean()), "helix_fraction_torsion": float(d.helix_torsion.mean()),
                        "helix_fraction_hbond": float(d.helix_hbond.mean()),
                        "three_ten_hbond_fraction": float(d.three_ten_hbond.mean())})
    lines += ["", "Helix: residue with φ in [-100, -30]° and ψ in [-80, -5]°; H-bond: O(i)···H–N(i+4) < 2.5 Å "
              "(α-helix; i+3: 3₁₀-helix, whose φ/ψ also fall in the helical window).",
              "Free energy from HILLS: F(s) = -Σ hills (well-tempered heights as written by PLUMED), kJ/mol.", "",
              "Plots: " + ", ".join(f"[{p}]({p})" for p in PLOTS + tuple(fes_plots)), ""]
    lines += list(fes_lines)
    if committee is not None:
        lines += uncertainty.markdown(committee)
    broken = [vars(b) for b in breakages]
    (out_dir / "summary.json").write_text(json.dumps({"temperatures": summary, "walkers": walkers,
                                                      "walker_paths": walker_rows,
                                                      "replica_exchange": exchanges[0].as_dict() if exchanges else None,
                                                      "hills": hills,
                                                      "broken_configurations": broken,
                                                      "committee_uncertainty": committee,
                                                      "run_history": history}, indent=1) + "\n")
    path = out_dir / "summary.md"
    path.write_text("\n".join(lines))
    return path
