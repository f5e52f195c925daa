"""End states of a folding run re-evaluated with a reference model: does the sampling model's picture hold?

From the lowest temperature of a run (demultiplexed frames, after the burn-in), the ``count`` most compact
and the ``count`` most extended frames by end-to-end distance are taken, no two closer in time than
``separation`` frames. The run's model and the reference (for example SO3LR, gas phase, all pairs, float64)
evaluate them as they are (single points) and after each has relaxed every frame with its own forces
(batched L-BFGS to fmax). Reported, per model: the mean energy of the compact group minus that of the
extended group, as sampled and relaxed; the run model's error on it (model − reference); its force
error on the sampled frames (MAE and RMSE against the reference); the spread σ of its per-frame energy
error on the sampled frames and σ²/kT; and per frame the time, end-to-end distance (sampled and relaxed),
helix fraction and energies.

Why σ²/kT: for a Gaussian per-frame error δ = E_model − E_reference of spread σ, the run model's own samples
have a mean δ lower by σ²/kT than the reference's samples would (free-energy perturbation), and reweighting
them to the reference's ensemble keeps a fraction of about exp(−σ²/(kT)²) of them. A model whose σ is a few
kT samples a visibly different ensemble, whatever its force error.

Units: eV (energies), meV/Å (force errors), Å, ps, K.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import peptide
from ...errors import UserError
from ...progress import Progress
from ...units import BOLTZMANN_EV_PER_K

JSON = "end_states.json"
PLOT = "end_states.png"
DEFAULT_COUNT = 4
DEFAULT_REFERENCE_DTYPE = "float64"


def check_count(count) -> None:
    """UserError unless ``count`` (frames per end state) is an integer >= 1."""
    if not (isinstance(count, int) and count >= 1):
        raise UserError(f"end-state count must be an integer >= 1, got {count!r}")


def select_end_states(end_to_end, count: int, burn_in: float, separation: int) -> tuple[list[int], list[int]]:
    """Frame indices (compact, extended): the ``count`` smallest and largest end_to_end (Å, one per frame
    in time order) among the frames after the first ``burn_in`` fraction, greedily, no two chosen frames
    of a group fewer than ``separation`` frames apart. A group may come out shorter on a short run."""
    end_to_end = np.asarray(end_to_end, float)
    check_count(count)
    first = int(burn_in * len(end_to_end))
    candidates = np.arange(first, len(end_to_end))
    if len(candidates) < 2:
        raise UserError(f"too few frames for end states: {len(end_to_end)} at the lowest temperature")

    def pick(order):
        chosen: list[int] = []
        for index in order:
            if len(chosen) == count:
                break
            if all(abs(int(index) - c) >= separation for c in chosen):
                chosen.append(int(index))
        return chosen

    by_distance = candidates[np.argsort(end_to_end[candidates], kind="stable")]
    compact = pick(by_distance)
    extended = pick([i for i in by_distance[::-1] if i not in compact])
    return compact, extended


def _end_to_end(numbers, positions) -> np.ndarray:
    backbone = peptide.find_backbone(numbers, positions[0])
    first, last = backbone.end_to_end_atoms()
    return peptide.distance(positions, first, last)


def _evaluate(potential, numbers, positions, settings, progress_label, report) -> dict:
    """Single points and relaxations of positions (F, N, 3) Å with one potential."""
    from ...evaluation.minimise import minimise  # JAX and the model: only when asked for

    single = potential.evaluate(np.broadcast_to(numbers, (len(positions), len(numbers))), positions)
    report(f"end states: relaxing {len(positions)} frames with {progress_label}")
    with Progress(total=len(positions), description="relaxing", unit="frame") as display:
        relaxed = minimise(potential, numbers, positions, settings,
                           on_progress=lambda finished, converged: display.update(finished, converged=converged))
    return {"energy": single.energy, "forces": single.forces, "relaxed_energy": relaxed.energy,
            "relaxed_positions": relaxed.positions, "converged": relaxed.converged, "fmax": relaxed.fmax,
            "steps": relaxed.steps}


def _group_difference(energies, compact: int) -> float:
    """Mean energy of the first ``compact`` entries minus the mean of the rest (eV)."""
    return float(np.mean(energies[:compact]) - np.mean(energies[compact:]))


def within_group_spread(errors, compact: int) -> float | None:
    """Pooled standard deviation (eV) of per-frame errors within the two groups (the first ``compact``
    entries, the rest): the compact − extended shift is reported apart and must not inflate it. None
    unless a group holds two frames or more."""
    groups = [np.asarray(errors[:compact], float), np.asarray(errors[compact:], float)]
    dof = sum(len(g) - 1 for g in groups)
    if dof < 1 or min(len(g) for g in groups) < 1:
        return None
    return float(np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / dof))


WORST_ATOMS = 3


def largest_force_errors(numbers, error, count: int = WORST_ATOMS) -> list[dict]:
    """The ``count`` atoms with the largest force error (eV/Å, length of the (N, 3) ``error`` per atom),
    largest first, named as chemists count them ('H74') with their 0-based index: where a frame's energy
    error sits."""
    from ...evaluation.topology import atom_label

    size = np.linalg.norm(np.asarray(error, float), axis=1)
    return [{"atom": atom_label(numbers, int(i)), "index": int(i), "eV_per_A": float(size[i])}
            for i in np.argsort(-size)[:count]]


def compare_end_states(numbers, positions, time, helix_fraction, temperature: float, model_potential,
                       reference_potential, model_label: str, reference_label: str, count: int = DEFAULT_COUNT,
                       burn_in: float = 0.1, separation: int = 2, fmax: float = 0.05, report=print) -> dict:
    """The record of the module docstring for frames at one temperature: numbers (N,), positions (F, N, 3) Å,
    time (F,) ps, helix_fraction (F,) (residues in the α basin), temperature (K); both potentials are
    :class:`~so3k_driver.evaluation.potential.Potential`. report(line) tells what is being done."""
    from ...evaluation.optimizers import LbfgsSettings

    numbers = np.asarray(numbers)
    end_to_end = _end_to_end(numbers, positions)
    compact, extended = select_end_states(end_to_end, count, burn_in, separation)
    chosen = compact + extended
    frames = np.asarray(positions)[chosen]
    settings = LbfgsSettings(fmax=fmax)  # minimise() takes at most len(chosen) structures per call
    results = {}
    for key, potential, label in (("model", model_potential, model_label),
                                  ("reference", reference_potential, reference_label)):
        report(f"end states: {len(chosen)} frames at {temperature:g} K with {label} (single points)")
        results[key] = _evaluate(potential, numbers, frames, settings, label, report)
    model, reference = results["model"], results["reference"]
    force_error = (model["forces"] - reference["forces"]).ravel()
    kT = BOLTZMANN_EV_PER_K * float(temperature)
    n = len(compact)
    spread = within_group_spread(model["energy"] - reference["energy"], n)
    record = {
        "temperature_K": float(temperature), "model": model_label, "reference": reference_label,
        "reference_dtype": reference_potential.dtype, "fmax_eV_per_A": fmax,
        "compact_frames": len(compact), "extended_frames": len(extended),
        "compact_minus_extended_eV": {
            "sampled": {"model": _group_difference(model["energy"], n),
                        "reference": _group_difference(reference["energy"], n)},
            "relaxed": {"model": _group_difference(model["relaxed_energy"], n),
                        "reference": _group_difference(reference["relaxed_energy"], n)},
        },
        "force_mae_meV_per_A": float(1e3 * np.mean(np.abs(force_error))),
        "force_rmse_meV_per_A": float(1e3 * np.sqrt(np.mean(force_error**2))),
        "energy_error_spread_eV": spread, "kT_eV": kT,
        "ensemble_shift_eV": None if spread is None else spread**2 / kT,
        "relaxations_converged": {"model": int(model["converged"].sum()), "reference": int(reference["converged"].sum())},
        "frames": [],
    }
    for key in ("sampled", "relaxed"):
        pair = record["compact_minus_extended_eV"][key]
        pair["model_minus_reference"] = pair["model"] - pair["reference"]
    relaxed_e2e = {key: _end_to_end(numbers, results[key]["relaxed_positions"]) for key in results}
    for k, index in enumerate(chosen):
        record["frames"].append({
            "largest_force_errors": largest_force_errors(numbers, model["forces"][k] - reference["forces"][k]),
            "group": "compact" if k < n else "extended", "frame": index, "time_ps": float(time[index]),
            "end_to_end_A": float(end_to_end[index]), "helix_fraction": float(helix_fraction[index]),
            "energy_eV": {key: float(results[key]["energy"][k]) for key in results},
            "relaxed_energy_eV": {key: float(results[key]["relaxed_energy"][k]) for key in results},
            "relaxed_end_to_end_A": {key: float(relaxed_e2e[key][k]) for key in results},
            # an unconverged relaxation's energy is an upper bound of its minimum's, not the minimum
            "relaxation": {key: {"converged": bool(results[key]["converged"][k]),
                                 "fmax_eV_per_A": float(results[key]["fmax"][k]),
                                 "steps": int(results[key]["steps"][k])} for key in results},
        })
    return record


def write(out_dir: Path, record: dict) -> None:
    (Path(out_dir) / JSON).write_text(json.dumps(record, indent=1) + "\n")
    plot(Path(out_dir) / PLOT, record)


def short_name(spec: str) -> str:
    """A model spec as an axis label: so3lr:DIR -> SO3LR, a file -> its stem, mlff:DIR -> mlff:folder name."""
    kind, _, location = spec.partition(":")
    if kind == "so3lr":
        return "SO3LR"
    if kind == "mlff":
        return f"mlff:{Path(location.rstrip('/')).name}"
    return Path(spec).stem if spec.endswith(".so3k") else spec


def plot(path: Path, record: dict) -> None:
    """Energies of the end-state frames relative to the mean of the extended group (eV): the run's model
    against the reference, sampled and relaxed, with the line of agreement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, key, title in zip(axes, ("energy_eV", "relaxed_energy_eV"), ("sampled frames", "relaxed")):
        values = {who: np.array([f[key][who] for f in record["frames"]]) for who in ("model", "reference")}
        extended = np.array([f["group"] == "extended" for f in record["frames"]])
        relative = {who: v - v[extended].mean() for who, v in values.items()}
        for group, marker in (("compact", "o"), ("extended", "s")):
            mask = ~extended if group == "compact" else extended
            ax.scatter(relative["reference"][mask], relative["model"][mask], marker=marker, label=group)
        low = min(relative["reference"].min(), relative["model"].min())
        high = max(relative["reference"].max(), relative["model"].max())
        ax.plot([low, high], [low, high], "k--", lw=1, label="agreement")
        ax.set(xlabel=f"{short_name(record['reference'])} ({record['reference_dtype']}): E − mean E(extended) (eV)",
               ylabel=f"{short_name(record['model'])}: E − mean E(extended) (eV)",
               title=f"{title}, {record['temperature_K']:g} K")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(record: dict) -> list[str]:
    differences = record["compact_minus_extended_eV"]
    lines = [f"## End states against {record['reference']} ({record['reference_dtype']})", "",
             f"The {record['compact_frames']} most compact and {record['extended_frames']} most extended frames at "
             f"{record['temperature_K']:g} K (end-to-end distance), evaluated with the run's model "
             f"({record['model']}) and the reference, as sampled and relaxed (L-BFGS to "
             f"{record['fmax_eV_per_A']:g} eV/Å; converged {record['relaxations_converged']['model']} and "
             f"{record['relaxations_converged']['reference']}). [{JSON}]({JSON}), [{PLOT}]({PLOT}).", "",
             "| compact − extended (eV) | run's model | reference | model − reference |", "|---|---|---|---|"]
    for key in ("sampled", "relaxed"):
        d = differences[key]
        lines.append(f"| {key} | {d['model']:+.3f} | {d['reference']:+.3f} | {d['model_minus_reference']:+.3f} |")
    lines += ["", f"Force error of the run's model on these frames: MAE {record['force_mae_meV_per_A']:.1f} meV/Å, "
              f"RMSE {record['force_rmse_meV_per_A']:.1f} meV/Å.", ""]
    if record.get("energy_error_spread_eV") is not None:  # older records, or one frame per group, lack it
        lines += [_ensemble_verdict(record), ""]
    lines += [
              "| group | time (ps) | end-to-end (Å) | helix fraction | energy error (eV) | largest force errors (eV/Å) "
              "| relaxed end-to-end, model / reference (Å) | largest force left, model / reference (eV/Å) |",
              "|---|---|---|---|---|---|---|---|"]
    for f in record["frames"]:
        left = " / ".join(_force_left(f, who) for who in ("model", "reference"))
        error = f["energy_eV"]["model"] - f["energy_eV"]["reference"]
        worst = ", ".join(f"{a['atom']} {a['eV_per_A']:.2f}" for a in f.get("largest_force_errors", ())) or "–"
        lines.append(f"| {f['group']} | {f['time_ps']:.2f} | {f['end_to_end_A']:.1f} | {f['helix_fraction']:.2f} | "
                     f"{error:+.3f} | {worst} | "
                     f"{f['relaxed_end_to_end_A']['model']:.1f} / {f['relaxed_end_to_end_A']['reference']:.1f} | {left} |")
    if any(not r["converged"] for f in record["frames"] for r in f.get("relaxation", {}).values()):
        lines += ["", "A relaxation in **bold** stopped at its step limit above the force threshold: its energy is "
                      "an upper bound of that minimum's, and the relaxed difference is less certain."]
    return lines + [""]


def _ensemble_verdict(record: dict) -> str:
    """What the per-frame energy error's spread says of the run's ensemble (module docstring)."""
    spread, kT, n = record["energy_error_spread_eV"], record["kT_eV"], len(record["frames"])
    standard_error = spread * np.sqrt(1 / record["compact_frames"] + 1 / record["extended_frames"])
    kept = np.exp(-(spread / kT) ** 2)
    verdict = ("its ensemble is close to the reference's" if spread <= kT else
               "its ensemble differs from the reference's")
    return (f"Within each group its per-frame energy error (model − reference, sampled frames) spreads by "
            f"σ = {spread:.3f} eV = "
            f"{spread / kT:.1f} kT, so the sampled model − reference difference above is uncertain by "
            f"±{standard_error:.3f} eV. For a Gaussian error the model's own samples sit about σ²/kT = "
            f"{record['ensemble_shift_eV']:.2f} eV lower than the reference's would, and reweighting them to the "
            f"reference keeps about {kept:.0e} of them: {verdict}. (σ from {n} frames: a rough estimate.)")


def _force_left(frame: dict, who: str) -> str:
    """The largest force after relaxing (eV/Å), bold when not converged; '–' for records without it."""
    relaxation = frame.get("relaxation", {}).get(who)
    if relaxation is None:
        return "–"
    text = f"{relaxation['fmax_eV_per_A']:.3f}"
    return text if relaxation["converged"] else f"**{text}**"
