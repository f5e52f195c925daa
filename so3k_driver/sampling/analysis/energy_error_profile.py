"""The run model's energy error along the end-to-end distance, against a reference model.

A folding free-energy profile is tilted by an energy error that depends on the chain's shape: a model
that puts compact chains too low makes the helix look too stable. Frames spread evenly over the lowest
temperature (after the burn-in) are evaluated as they are (single points) by the run's model and the
reference (for example SO3LR, gas phase, all pairs, float64). The per-frame error
e = E_model − E_reference − mean(E_model − E_reference) (eV per structure) is reported against the
end-to-end distance d (Å): in quarters of the frames by d (mean ± standard error), as a linear fit
(slope in eV per 10 Å, Pearson r), and as one number, "compact − extended" = mean e of the most compact
quarter minus that of the most extended quarter. Negative: the model over-stabilises compact chains by
that much on the frames it sampled. kJ/mol = eV / units.KJ_PER_MOL_IN_EV.

When both models are SO3LR-type (partial charges and Hirshfeld ratios feeding electrostatics and
dispersion), the error is also split by term: each model's electrostatic and dispersion energy is
recomputed from its own charges and ratios with the same pair functions (all pairs within each model's
long-range cutoff), their differences are the electrostatic and dispersion parts of the error, and the
rest is the local part (the message-passing network and ZBL). Each part gets the same quarters and
compact − extended number (mean removed), and the charge RMSE between the two models (e) is reported. A
student whose charges are off shows it here as an electrostatic tilt, which no amount of force training
on the local network cures.

Selection caveat: the frames come from the run's model, so they sit where its energy is low; a
reference that disagrees finds them higher. Compare models on frames none of them sampled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...units import KJ_PER_MOL_IN_EV

JSON = "energy_error_profile.json"
PLOT = "energy_error_profile.png"
DEFAULT_FRAMES = 100
MINIMUM_FRAMES = 8  # four quarters of at least two frames
BATCH = 16  # structures per model call


def check_frames(frames) -> None:
    """UserError unless ``frames`` (frames of the profile) is 0 (no profile) or an integer >= MINIMUM_FRAMES."""
    if not (isinstance(frames, int) and (frames == 0 or frames >= MINIMUM_FRAMES)):
        raise UserError(f"energy-profile frames must be 0 (none) or an integer >= {MINIMUM_FRAMES}, got {frames!r}")


def enough_frames(total: int, burn_in: float) -> bool:
    """Whether ``total`` frames leave MINIMUM_FRAMES after the first ``burn_in`` fraction."""
    return total - int(burn_in * total) >= MINIMUM_FRAMES


def spread_frames(total: int, burn_in: float, count: int) -> np.ndarray:
    """Indices of ``count`` frames spread evenly over frames [burn_in * total,
    total); all of them when there are fewer."""
    first = int(burn_in * total)
    available = total - first
    if not enough_frames(total, burn_in):
        raise UserError(f"too few frames for an energy-error profile: {available} after the burn-in "
                        f"({MINIMUM_FRAMES} needed)")
    if count >= available:
        return np.arange(first, total)
    return np.unique(np.round(np.linspace(first, total - 1, count)).astype(int))


TERMS = ("electrostatics", "dispersion", "local")


def splits_terms(potential) -> bool:
    """Whether ``potential`` is a single SO3LR-type model whose long-range terms can be recomputed
    (electrostatics and dispersion from its charges and Hirshfeld ratios; not a committee)."""
    config = getattr(potential, "config", None)
    return (config is not None and bool(config.electrostatics and config.dispersion)
            and not getattr(potential, "committee_size", None))


def single_points(potential, numbers, positions) -> dict:
    """Single points of positions (F, N, 3) Å of one molecule, ``BATCH`` structures per call: ``energy``
    (F,) eV, and for a model that ``splits_terms``: ``charges`` (F, N) e and its own ``electrostatics``
    and ``dispersion`` energies (F,) eV, recomputed from its charges and ratios (see the module docstring)."""
    import jax

    from ...model.so3lr import gas_phase_long_range_energies

    numbers = np.asarray(numbers)
    split = splits_terms(potential)
    points = {"energy": [], **({"charges": [], "electrostatics": [], "dispersion": []} if split else {})}
    for start in range(0, len(positions), BATCH):
        chunk = positions[start:start + BATCH]
        result = potential.evaluate(np.broadcast_to(numbers, (len(chunk), len(numbers))), chunk)
        points["energy"].append(np.asarray(result.energy))
        if not split:
            continue
        charges = np.asarray(result.extras["charges"], np.float64)
        with jax.enable_x64(True):  # scoped: the sums in float64 whatever the model's precision
            electrostatic, dispersion = gas_phase_long_range_energies(
                potential.config, numbers, chunk, charges, np.asarray(result.extras["hirshfeld_ratios"], np.float64),
                potential.lr_cutoff, potential.model.dispersion_damping)
        points["charges"].append(charges)
        points["electrostatics"].append(np.asarray(electrostatic))
        points["dispersion"].append(np.asarray(dispersion))
    return {key: np.concatenate(values) for key, values in points.items()}


def term_split(end_to_end, helix_fraction, model_points: dict, reference_points: dict) -> dict | None:
    """The error split by term (module docstring) from two ``single_points`` records of the same frames;
    None unless both carry their terms. Per term: its ``profile`` without the per-frame lists, plus its
    per-frame error (eV, mean removed); and ``charge_rmse_e`` between the two models' charges."""
    if not all(name in points for points in (model_points, reference_points) for name in TERMS[:2]):
        return None
    parts = {name: (model_points[name], reference_points[name]) for name in TERMS[:2]}
    parts["local"] = tuple(points["energy"] - points["electrostatics"] - points["dispersion"]
                           for points in (model_points, reference_points))
    terms = {}
    for name, (model_part, reference_part) in parts.items():
        record = profile(end_to_end, helix_fraction, model_part, reference_part)
        terms[name] = {key: value for key, value in record.items() if key not in ("per_frame", "frames")}
        terms[name]["error_eV"] = record["per_frame"]["error_eV"]
    difference = model_points["charges"] - reference_points["charges"]
    return {"terms": terms, "charge_rmse_e": float(np.sqrt(np.mean(difference**2)))}


def profile(end_to_end, helix_fraction, model_energy, reference_energy) -> dict:
    """The record of the module docstring from per-frame arrays (F,): end_to_end Å, helix_fraction,
    energies eV. Needs at least MINIMUM_FRAMES frames."""
    end_to_end = np.asarray(end_to_end, float)
    helix_fraction = np.asarray(helix_fraction, float)
    error = np.asarray(model_energy, float) - np.asarray(reference_energy, float)
    if not (len(end_to_end) == len(helix_fraction) == len(error)):
        raise ValueError(f"per-frame arrays differ in length: {len(end_to_end)}, {len(helix_fraction)}, {len(error)}")
    if len(error) < MINIMUM_FRAMES:
        raise ValueError(f"an energy-error profile needs at least {MINIMUM_FRAMES} frames, got {len(error)}")
    offset = float(error.mean())
    error = error - offset
    order = np.argsort(end_to_end, kind="stable")
    quarters = []
    for indices in np.array_split(order, 4):
        values = error[indices]
        quarters.append({"end_to_end_A": [float(end_to_end[indices].min()), float(end_to_end[indices].max())],
                         "frames": int(len(indices)), "mean_helix_fraction": float(helix_fraction[indices].mean()),
                         "mean_error_eV": float(values.mean()),
                         "standard_error_eV": float(values.std(ddof=1) / np.sqrt(len(values)))})
    flat = np.ptp(end_to_end) == 0
    return {
        "frames": int(len(error)),
        "offset_eV": offset,
        "error_rms_eV": float(np.sqrt(np.mean(error**2))),
        "quarters": quarters,
        "compact_minus_extended_eV": quarters[0]["mean_error_eV"] - quarters[-1]["mean_error_eV"],
        "slope_eV_per_10A": None if flat else float(10.0 * np.polyfit(end_to_end, error, 1)[0]),
        "correlation_end_to_end": None if flat or np.ptp(error) == 0 else float(np.corrcoef(end_to_end, error)[0, 1]),
        "per_frame": {"end_to_end_A": end_to_end.round(3).tolist(), "helix_fraction": helix_fraction.round(4).tolist(),
                      "error_eV": error.round(5).tolist()},
    }


def write(out_dir: Path, record: dict) -> None:
    (Path(out_dir) / JSON).write_text(json.dumps(record, indent=1) + "\n")
    from .end_states import short_name

    plot(Path(out_dir) / PLOT, record, short_name(record["model"]), short_name(record["reference"]))


def plot(path, record: dict, model_label: str, reference_label: str) -> None:
    """Per-frame error against the end-to-end distance, coloured by helix fraction, with the quarters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = record["per_frame"]
    split = record.get("terms")
    figure, axes = plt.subplots(1, 2 if split else 1, figsize=(11.5 if split else 6.4, 4.4), squeeze=False)
    axis = axes[0, 0]
    points = axis.scatter(frames["end_to_end_A"], frames["error_eV"], c=frames["helix_fraction"], s=10,
                          cmap="viridis", vmin=0, vmax=1)
    for row in record["quarters"]:
        low, high = row["end_to_end_A"]
        axis.errorbar(0.5 * (low + high), row["mean_error_eV"], yerr=row["standard_error_eV"], xerr=0.5 * (high - low),
                      color="C3", lw=2, capsize=3)
    axis.axhline(0.0, color="0.6", lw=0.8)
    axis.set_xlabel("end-to-end distance (Å)")
    axis.set_ylabel(f"E({model_label}) − E({reference_label}), mean removed (eV)", fontsize=9)
    axis.set_title(f"compact − extended quarter {record['compact_minus_extended_eV']:+.2f} eV", fontsize=10)
    figure.colorbar(points, ax=axis, label="helix fraction (torsions)")
    if split:
        _plot_terms(axes[0, 1], record)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_terms(axis, record: dict) -> None:
    """Quarter means (± standard error) of the total error and of each term's part against the end-to-end
    distance: which term tilts compact against extended chains."""
    middles = [0.5 * sum(row["end_to_end_A"]) for row in record["quarters"]]
    rows = {"total": record["quarters"], **{name: part["quarters"] for name, part in record["terms"].items()}}
    for k, (name, quarters) in enumerate(rows.items()):
        axis.errorbar(middles, [q["mean_error_eV"] for q in quarters], yerr=[q["standard_error_eV"] for q in quarters],
                      marker="o", capsize=3, color="k" if name == "total" else f"C{k - 1}",
                      lw=2 if name == "total" else 1.2, label=name)
    axis.axhline(0.0, color="0.6", lw=0.8)
    axis.set_xlabel("end-to-end distance (Å), quarter middles")
    axis.set_ylabel("mean error per quarter, mean removed (eV)", fontsize=9)
    axis.set_title(f"error by term; charges {1e3 * record['charge_rmse_e']:.1f} me RMSE apart", fontsize=10)
    axis.legend(fontsize=8)


def term_table(record: dict) -> list[str]:
    """The error split by term, per quarter (eV, mean removed), as a Markdown table with its reading."""
    terms = record["terms"]
    lines = ["| end-to-end (Å) | total | " + " | ".join(terms) + " |", "|---|---|" + "---|" * len(terms)]
    for k, row in enumerate(record["quarters"]):
        low, high = row["end_to_end_A"]
        lines.append(f"| {low:.1f}–{high:.1f} | {row['mean_error_eV']:+.3f} | "
                     + " | ".join(f"{part['quarters'][k]['mean_error_eV']:+.3f}" for part in terms.values()) + " |")
    lines.append("| compact − extended | " + f"{record['compact_minus_extended_eV']:+.3f} | "
                 + " | ".join(f"{part['compact_minus_extended_eV']:+.3f}" for part in terms.values()) + " |")
    lines.append("| per-frame RMS | " + f"{record['error_rms_eV']:.3f} | "
                 + " | ".join(f"{part['error_rms_eV']:.3f}" for part in terms.values()) + " |")
    return lines + ["", f"Partial charges: {1e3 * record['charge_rmse_e']:.1f} me RMSE between the two models."]


def table(record: dict) -> list[str]:
    """The quarters as a Markdown table, then the one-number summary."""
    lines = ["| end-to-end (Å) | frames | helix fraction | mean error (eV) | (kJ/mol) |", "|---|---|---|---|---|"]
    for row in record["quarters"]:
        low, high = row["end_to_end_A"]
        lines.append(f"| {low:.1f}–{high:.1f} | {row['frames']} | {row['mean_helix_fraction']:.2f} | "
                     f"{row['mean_error_eV']:+.3f} ± {row['standard_error_eV']:.3f} | "
                     f"{row['mean_error_eV'] / KJ_PER_MOL_IN_EV:+.1f} |")
    slope = record["slope_eV_per_10A"]
    correlation = record["correlation_end_to_end"]
    lines += ["", f"**Compact − extended quarter: {record['compact_minus_extended_eV']:+.3f} eV "
                  f"({record['compact_minus_extended_eV'] / KJ_PER_MOL_IN_EV:+.1f} kJ/mol)**"
                  + (f"; slope {slope:+.3f} eV per 10 Å" if slope is not None else "")
                  + (f" (r = {correlation:+.2f})" if correlation is not None else "")
                  + f"; per-frame RMS {record['error_rms_eV']:.3f} eV after removing the mean "
                  f"({record['offset_eV']:+.3f} eV)."]
    return lines


def sampling_caveat(record: dict) -> str:
    """Who sampled the frames and what that means. ``sampled_by``: the model specs that sampled the study,
    earliest first (a list; a single spec in records written before studies could change models), None when
    unknown."""
    sampler = record.get("sampled_by")
    samplers = list(dict.fromkeys([sampler] if isinstance(sampler, str) else sampler or []))
    if not samplers or samplers == [record["model"]]:
        return "These frames were sampled by the run's model, where its energy is low."
    if samplers == [record["reference"]]:
        return "These frames were sampled by the reference itself, not by the model: a test the model was not chosen for."
    if len(samplers) == 1:
        return f"These frames were sampled by {samplers[0]}, neither of the two models."
    return (f"These frames were sampled by {', then '.join(samplers)} (the study changed models): each part "
            f"favours the model that sampled it.")


def markdown(record: dict) -> list[str]:
    lines = [f"## Energy error along the end-to-end distance, against {record['reference']} "
             f"({record['reference_dtype']})", "",
             f"{record['frames']} frames spread over {record['temperature_K']:g} K after the burn-in, single points "
             f"with the run's model ({record['model']}) and the reference. Negative compact − extended: the run's "
             f"model puts compact chains too low, and its free-energy profile leans towards them. "
             f"{sampling_caveat(record)} [{JSON}]({JSON}), [{PLOT}]({PLOT}).", ""]
    lines += table(record) + [""]
    if record.get("terms"):
        lines += ["### Which term the error is in", "",
                  "Both models are SO3LR-type: each one's electrostatic and dispersion energy recomputed from its own "
                  "charges and Hirshfeld ratios; the differences are those terms' parts of the error, the rest is the "
                  "local network and ZBL (eV, mean removed).", ""] + term_table(record) + [""]
    return lines
