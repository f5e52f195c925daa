"""How close atoms that are not bonded come in a study: a student that repels too softly samples clashes.

    python bench/close_contacts.py runs/ala15_folding_v13 /tmp/ala15_folding_so3lr --label "student v13" \
        --label SO3LR --out docs/results/.../close_contacts

For every frame of each study (all temperatures, the demultiplexed series of `so3k analyze`, after
--burn-in ps) the shortest distance (Å) between atoms three or more bonds apart (the bond graph of the
first frame, covalent radii × 1.2), for H···H and for any pair. Reports per temperature the median
and 1st percentile and the share of frames below each threshold, and plots the distributions at the
lowest temperature. Writes contacts.json and contacts.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

THRESHOLDS_A = (1.7, 1.8, 1.9, 2.0)


def separated_pairs(numbers, positions) -> np.ndarray:
    """(P, 2) atom pairs three or more bonds apart."""
    from so3k_driver.evaluation.topology import bond_graph

    graph = bond_graph(numbers, positions)
    near = [set(graph[i]) | {k for j in graph[i] for k in graph[j]} | {i} for i in range(len(numbers))]
    return np.array([(i, j) for i in range(len(numbers)) for j in range(i + 1, len(numbers)) if j not in near[i]])


def shortest(positions: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(F,) shortest distance (Å) over ``pairs`` in each of the (F, N, 3) frames."""
    return np.linalg.norm(positions[:, pairs[:, 0]] - positions[:, pairs[:, 1]], axis=-1).min(axis=1)


def study_contacts(run_dir: Path, burn_in: float) -> dict:
    from so3k_driver.sampling.analysis import ipi_outputs

    symbols, series, _ = ipi_outputs.demultiplex(run_dir)
    numbers = np.asarray(ipi_outputs.atomic_numbers_of(symbols))
    pairs = separated_pairs(numbers, np.asarray(series[0].positions[0], np.float64))
    hydrogen = (numbers[pairs[:, 0]] == 1) & (numbers[pairs[:, 1]] == 1)
    result = {}
    for s in series:
        keep = s.time >= burn_in
        positions = np.asarray(s.positions, np.float64)[keep]
        row = {"frames": int(keep.sum()), "time_ps": [float(s.time[keep][0]), float(s.time[keep][-1])]}
        for name, chosen in (("H-H", pairs[hydrogen]), ("any", pairs)):
            d = shortest(positions, chosen)
            row[name] = {"median_A": float(np.median(d)), "p01_A": float(np.percentile(d, 1)),
                         "min_A": float(d.min()),
                         "share_below": {f"{t:g}": float((d < t).mean()) for t in THRESHOLDS_A},
                         "values": d.round(3).tolist()}
        result[f"{s.temperature:g}"] = row
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="study folders (so3k sample)")
    parser.add_argument("--label", action="append", help="a name per study (default: the folder name)")
    parser.add_argument("--burn-in", type=float, default=0.0, help="ps left out at the start (default 0)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    labels = args.label or [Path(r).name for r in args.runs]
    if len(labels) != len(args.runs):
        parser.error(f"give one --label per study: {len(args.runs)} studies, {len(labels)} labels")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    studies = {label: study_contacts(Path(run), args.burn_in) for label, run in zip(labels, args.runs)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, per_temperature in studies.items():
        lowest = min(per_temperature, key=float)
        for ax, name in zip(axes, ("H-H", "any")):
            ax.hist(per_temperature[lowest][name]["values"], bins=np.arange(1.4, 3.0, 0.025), histtype="step",
                    density=True, label=f"{label}, {lowest} K ({per_temperature[lowest]['frames']} frames)")
        print(f"{label}:")
        for temperature, row in per_temperature.items():
            hh = row["H-H"]
            print(f"  {temperature:>6} K, {row['frames']:5d} frames: shortest H···H median {hh['median_A']:.3f} Å, "
                  f"1st percentile {hh['p01_A']:.3f}, min {hh['min_A']:.3f}; frames below "
                  + ", ".join(f"{t} Å {100 * v:.1f} %" for t, v in hh["share_below"].items()))
    for ax, name in zip(axes, ("H···H", "any pair")):
        ax.set_xlabel(f"shortest {name} distance, ≥ 3 bonds apart (Å)")
        ax.set_ylabel("frames (density)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "contacts.png", dpi=120)
    slim = {label: {t: {k: ({kk: vv for kk, vv in v.items() if kk != "values"} if isinstance(v, dict) else v)
                        for k, v in row.items()} for t, row in per.items()} for label, per in studies.items()}
    (out / "contacts.json").write_text(json.dumps({"burn_in_ps": args.burn_in, "studies": dict(zip(labels, args.runs)),
                                                   "contacts": slim}, indent=1) + "\n")
    print(f"wrote {out}/contacts.json and contacts.png")


if __name__ == "__main__":
    main()
