"""Which helix does each model keep? α (i→i+4) and 3₁₀ (i→i+3) backbone H-bonds of every configuration of
one or more runs (replica exchange or one NVT system) against time (issue #13).

    python bench/helix_form_traces.py "SO3LR=runs/refine/so3lr" "v13=runs/refine/v13" --out PREFIX [--window-ps 10]

Each DIR is a study folder (``so3k sample init``) whose runs started from the same frames, e.g. those of
``bench/pick_helix_starts.py``; times are i-PI's own (the properties' time column), ``start_kind`` in
each start frame's info names the start 3-10 or alpha (else the structure file's name does). Per configuration
(i-PI's ``T-k`` files follow a configuration through the temperatures) and per frame: helical residues
(φ/ψ in the helical basin), α and 3₁₀ H-bonds (H···O < 2.5 Å; ``sampling.peptide.helix_shape``), end to end
(Å) and the temperature the configuration had (K). Writes PREFIX.png (H-bond counts against time as running
means over --smooth-ps, one panel per configuration, one colour per H-bond kind, one line style per run) and
PREFIX.json: the series; per run and configuration, the means over the first and the last --window-ps
picoseconds; per run and temperature, the means over every configuration's frames after its first --window-ps.
With --windows-ps A,B,C,...: per run and window [A, B), [B, C), ... (ps), the mean of each configuration's
frames, then the mean and standard error over the configurations, and the mean over the frames at the lowest
temperature (whichever configuration held it): is a long run still drifting?
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from so3k_driver.sampling import peptide
from so3k_driver.sampling.analysis.ipi_outputs import (atomic_numbers_of, find_systems, read_properties,
                                                       read_xyz_frames, sampling_temperatures)
from so3k_driver.sampling.settings import StudySettings

MEASURES = ("helical_residues", "alpha_hbonds", "three_ten_hbonds", "end_to_end_A")


def start_kinds(settings: StudySettings) -> list[str | None]:
    """The start_kind of each system's start frame; the structure file's name where it has none."""
    try:
        from ase.io import read

        frames = read(settings.structure, ":")
    except Exception:  # the structure may have moved; the kinds are a label only
        return [None] * settings.systems
    indices = settings.start_frames or [len(frames) - 1] * settings.systems
    return [frames[i].info.get("start_kind", Path(settings.structure).stem) for i in indices]


def configuration_series(properties_file: Path, trajectory: Path) -> dict:
    """One configuration's frames (properties and trajectory share one stride): MEASURES, time_ps, temperature_K."""
    symbols, frames = read_xyz_frames(trajectory)
    backbone = peptide.find_backbone(atomic_numbers_of(symbols), frames[0])
    properties = read_properties(properties_file)
    temperatures = sampling_temperatures(properties, properties_file)
    count = min(len(frames), len(temperatures))
    shapes = [peptide.helix_shape(positions, backbone) for positions in frames[:count]]
    series = {name: [shape[name] for shape in shapes] for name in MEASURES}
    series["time_ps"] = [round(float(t), 4) for t in properties["time"][:count]]
    series["temperature_K"] = [round(float(t), 1) for t in temperatures[:count]]
    return series


def window_means(series: dict, window_ps: float) -> dict:
    time = np.asarray(series["time_ps"])
    first, last = time <= time[0] + window_ps, time >= time[-1] - window_ps
    return {which: {name: round(float(np.mean(np.asarray(series[name])[mask])), 2) for name in
                    MEASURES + ("temperature_K",)} for which, mask in (("first", first), ("last", last))}


def temperature_means(configurations: list[dict], skip_ps: float) -> dict:
    """Per temperature (K, as text), the means over all configurations' frames after the first skip_ps."""
    pooled: dict[float, dict[str, list]] = {}
    for entry in configurations:
        series = entry["series"]
        for k, (time, temperature) in enumerate(zip(series["time_ps"], series["temperature_K"])):
            if time > series["time_ps"][0] + skip_ps:
                bucket = pooled.setdefault(temperature, {name: [] for name in MEASURES})
                for name in MEASURES:
                    bucket[name].append(series[name][k])
    return {f"{t:g}": {"frames": len(b["alpha_hbonds"]), **{n: round(float(np.mean(v)), 2) for n, v in b.items()}}
            for t, b in sorted(pooled.items())}


def time_window_means(configurations: list[dict], edges: list[float], lowest_temperature: float) -> list[dict]:
    """Per window [edges[i], edges[i+1]) ps: configuration means pooled (mean, standard error over the
    configurations that have frames there) and the mean over frames at lowest_temperature (K)."""
    windows = []
    for start, end in zip(edges[:-1], edges[1:]):
        per_configuration, coldest = {name: [] for name in MEASURES}, {name: [] for name in MEASURES}
        for entry in configurations:
            series = entry["series"]
            time = np.asarray(series["time_ps"])
            inside = (time >= start) & (time < end)
            if not inside.any():
                continue
            cold = inside & np.isclose(series["temperature_K"], lowest_temperature, atol=0.05)
            for name in MEASURES:
                values = np.asarray(series[name], float)
                per_configuration[name].append(values[inside].mean())
                coldest[name].extend(values[cold].tolist())
        count = len(per_configuration["alpha_hbonds"])
        if count == 0:
            continue
        windows.append({
            "start_ps": start, "end_ps": end, "configurations": count,
            "mean": {n: round(float(np.mean(v)), 2) for n, v in per_configuration.items()},
            "standard_error": {n: round(float(np.std(v, ddof=1) / np.sqrt(count)), 2) if count > 1 else None
                               for n, v in per_configuration.items()},
            f"at_{lowest_temperature:g}_K": {"frames": len(coldest["alpha_hbonds"]),
                                             **{n: round(float(np.mean(v)), 2) if v else None
                                                for n, v in coldest.items()}},
        })
    return windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    parser.add_argument("--out", required=True, help="output prefix: PREFIX.png and PREFIX.json")
    parser.add_argument("--window-ps", type=float, default=10.0)
    parser.add_argument("--smooth-ps", type=float, default=2.0, help="running-mean window of the plot (ps)")
    parser.add_argument("--windows-ps", help="window edges in ps, comma separated (e.g. 10,45,90,150)")
    args = parser.parse_args()
    edges = None
    if args.windows_ps:
        try:
            edges = [float(v) for v in args.windows_ps.split(",")]
        except ValueError:
            sys.exit(f"--windows-ps takes numbers separated by commas, got {args.windows_ps!r}")
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            sys.exit(f"--windows-ps needs at least two increasing edges, got {args.windows_ps!r}")
    report = {"window_ps": args.window_ps, "runs": {}}
    for spec in args.runs:
        label, _, folder = spec.partition("=")
        if not folder:
            sys.exit(f"give each run as LABEL=DIR, got {spec!r}")
        settings = StudySettings.load(folder)
        kinds = start_kinds(settings)
        configurations = []
        for k, (properties_file, trajectory) in enumerate(find_systems(Path(folder))):
            series = configuration_series(properties_file, trajectory)
            entry = {"configuration": k, "start_kind": kinds[k] if k < len(kinds) else None,
                     **window_means(series, args.window_ps), "series": series}
            configurations.append(entry)
            first, last = entry["first"], entry["last"]
            print(f"{label} configuration {k} ({entry['start_kind']}), {series['time_ps'][-1]:.1f} ps: "
                  f"first {first['alpha_hbonds']:.1f} α / {first['three_ten_hbonds']:.1f} 3₁₀, last {args.window_ps:g} ps "
                  f"{last['alpha_hbonds']:.1f} α / {last['three_ten_hbonds']:.1f} 3₁₀, "
                  f"{last['helical_residues']:.1f} helical, {last['end_to_end_A']:.1f} Å at {last['temperature_K']:.0f} K")
        by_temperature = temperature_means(configurations, args.window_ps)
        for temperature, means in by_temperature.items():
            print(f"{label} at {temperature} K after the first {args.window_ps:g} ps ({means['frames']} frames): "
                  f"{means['alpha_hbonds']:.2f} α / {means['three_ten_hbonds']:.2f} 3₁₀ H-bonds, "
                  f"{means['helical_residues']:.2f} helical, {means['end_to_end_A']:.1f} Å")
        report["runs"][label] = {"folder": str(folder), "model": settings.model, "timestep_fs": settings.timestep_fs,
                                 "temperatures_K": list(settings.temperatures), "configurations": configurations,
                                 "by_temperature_after_first_window": by_temperature}
        if edges is not None:
            lowest = min(settings.temperatures)
            windows = time_window_means(configurations, edges, lowest)
            report["runs"][label]["time_windows"] = windows
            for w in windows:
                m, e, c = w["mean"], w["standard_error"], w[f"at_{lowest:g}_K"]
                err = (lambda n: f" ± {e[n]:.2f}" if e[n] is not None else "")
                print(f"{label} {w['start_ps']:g}-{w['end_ps']:g} ps ({w['configurations']} configurations): "
                      f"α {m['alpha_hbonds']:.2f}{err('alpha_hbonds')}, 3₁₀ {m['three_ten_hbonds']:.2f}"
                      f"{err('three_ten_hbonds')}, helical {m['helical_residues']:.2f}, {m['end_to_end_A']:.1f} Å; "
                      f"at {lowest:g} K ({c['frames']} frames): α {c['alpha_hbonds']}, 3₁₀ {c['three_ten_hbonds']}, "
                      f"{c['end_to_end_A']} Å")
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, Path(f"{args.out}.png"), args.smooth_ps)
    print(f"wrote {args.out}.json and {args.out}.png")


def running_mean(values, width: int) -> np.ndarray:
    values = np.asarray(values, float)
    if width <= 1 or len(values) < width:
        return values
    return np.convolve(values, np.ones(width) / width, mode="valid")


def plot(report: dict, path: Path, smooth_ps: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = max(len(run["configurations"]) for run in report["runs"].values())
    columns = min(4, count)
    rows = -(-count // columns)
    width = 3.2 * columns if count > 1 else 7.0
    fig, axes = plt.subplots(rows, columns, figsize=(width, 2.4 * rows + (1.0 if count == 1 else 0.0)),
                             sharex=True, sharey=True, squeeze=False)
    styles = ["-", "--", ":", "-."]
    for (label, run), style in zip(report["runs"].items(), styles):
        for entry in run["configurations"]:
            ax = axes.flat[entry["configuration"]]
            series = entry["series"]
            time = np.asarray(series["time_ps"])
            width = max(1, int(round(smooth_ps / (time[1] - time[0])))) if len(time) > 1 else 1
            centre = running_mean(time, width)
            ax.plot(centre, running_mean(series["alpha_hbonds"], width), style, color="C0", lw=1.2,
                    label=f"{label}: α (i→i+4)")
            ax.plot(centre, running_mean(series["three_ten_hbonds"], width), style, color="C3", lw=1.2,
                    label=f"{label}: 3₁₀ (i→i+3)")
            ax.set_title(f"configuration {entry['configuration']} (start: {entry['start_kind'] or '?'})", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("time (ps)")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"H-bonds ({smooth_ps:g} ps mean)")
    axes.flat[0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
