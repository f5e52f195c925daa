"""How close atoms that are not bonded come in a study: a student that repels too softly samples clashes.

    python bench/close_contacts.py runs/ala15_folding_v13 /tmp/ala15_folding_so3lr --label "student v13" \
        --label SO3LR --out docs/results/.../close_contacts

For every frame of each study (all temperatures, the demultiplexed series of `so3k analyze`, after
--burn-in ps) the shortest distance (Å) between atoms three or more bonds apart (the bond graph of the
first frame, covalent radii × 1.2), for H···H and for any pair; and for the H···X distances across a bond
angle (two bonds apart) the smallest ratio to that distance's median over the study: a collapsing X–C–H
angle (student v13 at 504 ps: N87–C89–H90 at 67°, N87···H90 1.45 Å, 0.67 of its median); and the longest
covalent bond per frame over the sum of its atoms' covalent radii, the MD bond guard's measure (a time step
too long for the fastest stretch shows there first). Reports per temperature the median and 1st percentile
and the share of frames below each threshold, and plots the distributions at the lowest temperature.
Writes contacts.json and contacts.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

THRESHOLDS_A = (1.7, 1.8, 1.9, 2.0)
ANGLE_THRESHOLDS = (0.7, 0.75, 0.8, 0.85)  # H···X across an angle over its median distance


def separated_pairs(numbers, positions) -> np.ndarray:
    """(P, 2) atom pairs three or more bonds apart."""
    from so3k_driver.evaluation.topology import bond_graph

    graph = bond_graph(numbers, positions)
    near = [set(graph[i]) | {k for j in graph[i] for k in graph[j]} | {i} for i in range(len(numbers))]
    return np.array([(i, j) for i in range(len(numbers)) for j in range(i + 1, len(numbers)) if j not in near[i]])


def geminal_hydrogen_pairs(numbers, positions) -> np.ndarray:
    """(P, 2) pairs two bonds apart (the ends of a bond angle) of which one is a hydrogen: a collapsing
    X–C–H angle shows as a short H···X distance (~1.8–2.2 Å normally)."""
    from make_angle_bend_variants import hydrogen_angles  # bench/, next to this script

    return np.array(sorted({tuple(sorted((x, h))) for x, _, h in hydrogen_angles(numbers, positions)}))


def pair_distances(positions: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(F, P) distances (Å) of ``pairs`` in the (F, N, 3) frames."""
    return np.linalg.norm(positions[:, pairs[:, 0]] - positions[:, pairs[:, 1]], axis=-1)


def shortest(positions: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(F,) shortest distance (Å) over ``pairs`` in each of the (F, N, 3) frames."""
    return pair_distances(positions, pairs).min(axis=1)


def study_contacts(run_dir: Path, burn_in: float, list_below: float = 0.8) -> dict:
    from so3k_driver.evaluation.topology import BondGuard, atom_label
    from so3k_driver.sampling.analysis import ipi_outputs

    symbols, series, _ = ipi_outputs.demultiplex(run_dir)
    numbers = np.asarray(ipi_outputs.atomic_numbers_of(symbols))
    first = np.asarray(series[0].positions[0], np.float64)
    pairs = separated_pairs(numbers, first)
    hydrogen = (numbers[pairs[:, 0]] == 1) & (numbers[pairs[:, 1]] == 1)
    geminal = geminal_hydrogen_pairs(numbers, first)
    typical = np.median(np.concatenate([pair_distances(np.asarray(s.positions, np.float64), geminal)
                                        for s in series]), axis=0)
    guard = BondGuard(numbers, first)  # its bonds and their sums of covalent radii: the guard's own measure
    result = {"collapsed_angles": []}  # frames with an H···X across an angle below list_below × its median
    for s in series:
        keep = s.time >= burn_in
        positions = np.asarray(s.positions, np.float64)[keep]
        time, system = s.time[keep], None if s.system is None else s.system[keep]
        ratios = pair_distances(positions, geminal) / typical  # each angle against its own median: no unit
        for f in np.where(ratios.min(axis=1) < list_below)[0]:
            k = int(ratios[f].argmin())
            result["collapsed_angles"].append({
                "temperature_K": s.temperature, "time_ps": float(time[f]),
                "configuration": None if system is None else int(system[f]),
                "atoms": [atom_label(numbers, int(i)) for i in geminal[k]], "ratio": float(ratios[f, k]),
                "distance_A": float(ratios[f, k] * typical[k])})
        row = {"frames": int(keep.sum()), "time_ps": [float(time[0]), float(time[-1])]}
        for name, chosen in (("H-H", pairs[hydrogen]), ("any", pairs), ("angle H", geminal)):
            d = ratios.min(axis=1) if name == "angle H" else shortest(positions, chosen)
            row[name] = {"median_A": float(np.median(d)), "p01_A": float(np.percentile(d, 1)),
                         "min_A": float(d.min()),
                         "share_below": {f"{t:g}": float((d < t).mean())
                                         for t in (ANGLE_THRESHOLDS if name == "angle H" else THRESHOLDS_A)},
                         "values": d.round(3).tolist()}
        stretch = pair_distances(positions, guard.pairs) / guard.radius_sums  # (F, M)
        f, k = np.unravel_index(int(stretch.argmax()), stretch.shape)
        longest = stretch.max(axis=1)
        row["bond stretch"] = {"median": float(np.median(longest)), "p99": float(np.percentile(longest, 99)),
                               "max": float(longest.max()), "time_ps": float(time[f]),
                               "bond": [atom_label(numbers, int(i)) for i in guard.pairs[k]],
                               "length_A": float(stretch[f, k] * guard.radius_sums[k])}
        result[f"{s.temperature:g}"] = row
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="study folders (so3k sample)")
    parser.add_argument("--label", action="append", help="a name per study (default: the folder name)")
    parser.add_argument("--burn-in", type=float, default=0.0, help="ps left out at the start (default 0)")
    parser.add_argument("--list-below", type=float, default=0.8,
                        help="list frames whose H···X across an angle is below this fraction of its median (0.8)")
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
    studies = {label: study_contacts(Path(run), args.burn_in, args.list_below) for label, run in zip(labels, args.runs)}
    collapsed = {label: per.pop("collapsed_angles") for label, per in studies.items()}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for label, per_temperature in studies.items():
        lowest = min(per_temperature, key=float)
        for ax, name in zip(axes, ("H-H", "any", "angle H")):
            bins = np.arange(0.6, 1.0, 0.005) if name == "angle H" else np.arange(1.3, 3.0, 0.025)
            ax.hist(per_temperature[lowest][name]["values"], bins=bins, histtype="step", log=name == "angle H",
                    density=True, label=f"{label}, {lowest} K ({per_temperature[lowest]['frames']} frames)")
        print(f"{label}: {len(collapsed[label])} frames with an angle's H···X below {args.list_below:g} × its median")
        for c in sorted(collapsed[label], key=lambda c: (c["configuration"] or 0, c["time_ps"])):
            print(f"  configuration {c['configuration']}, {c['time_ps']:.1f} ps, {c['temperature_K']:g} K: "
                  f"{'···'.join(c['atoms'])} {c['distance_A']:.2f} Å ({c['ratio']:.3f})")
        for temperature, row in per_temperature.items():
            for name in ("H-H", "angle H"):
                hh = row[name]
                unit = "" if name == "angle H" else " Å"
                print(f"  {temperature:>6} K, {row['frames']:5d} frames: shortest {name} median {hh['median_A']:.3f}{unit}, "
                      f"1st percentile {hh['p01_A']:.3f}, min {hh['min_A']:.3f}; frames below "
                      + ", ".join(f"{t}{unit} {100 * v:.2f} %" for t, v in hh["share_below"].items()))
            b = row["bond stretch"]
            print(f"  {temperature:>6} K: longest bond / sum of covalent radii per frame: median {b['median']:.3f}, "
                  f"99th percentile {b['p99']:.3f}, max {b['max']:.3f} ({'–'.join(b['bond'])} {b['length_A']:.2f} Å "
                  f"at {b['time_ps']:.1f} ps; the bond guard stops at 1.6)")
    for ax, name in zip(axes, ("H···H, ≥ 3 bonds apart (Å)", "any pair, ≥ 3 bonds apart (Å)",
                               "H···X across an angle / its median")):
        ax.set_xlabel(f"shortest {name}")
        ax.set_ylabel("frames (density)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "contacts.png", dpi=120)
    slim = {label: {t: {k: ({kk: vv for kk, vv in v.items() if kk != "values"} if isinstance(v, dict) else v)
                        for k, v in row.items()} for t, row in per.items()} for label, per in studies.items()}
    (out / "contacts.json").write_text(json.dumps({"burn_in_ps": args.burn_in, "studies": dict(zip(labels, args.runs)),
                                                   "contacts": slim, "list_below": args.list_below,
                                                   "collapsed_angles": collapsed}, indent=1) + "\n")
    print(f"wrote {out}/contacts.json and contacts.png")


if __name__ == "__main__":
    main()
