"""Compare folding studies of one protocol at their lowest temperature: torsion helicity and end-to-end distance
against simulated time, from each study's COLVAR (issue #13).

    python bench/compare_folding_studies.py "v6=DIR" "SO3LR=DIR" "v13=DIR" --out PREFIX [--window-ps 10]

Each DIR is a study folder (or an unpacked resume kit) run with ``--metad helix-torsions``: its ``COLVAR.T0``
holds ab (PLUMED's ALPHABETA over the 15 φ and 15 ψ, 30 for an ideal α-helix, ~6 for the extended chain)
and e2e (Å). COLVAR's time column counts MD steps under i-PI; study.json gives the time step. Writes
PREFIX.png (ab/30 and e2e in windows of --window-ps, with the shipped helix's values as lines) and PREFIX.json
(the window means per study). These are the biased, raw values at the lowest temperature, not reweighted:
they show how far each run has come, not the equilibrium helix fraction (``so3k analyze`` reports that).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from so3k_driver.sampling.analysis import plumed_files
from so3k_driver.sampling.settings import StudySettings

TORSIONS = 30  # 15 φ and 15 ψ of Ac-Ala15-NHMe
HELIX_AB = 29.0  # the shipped helix (docs/results/ala15_folding_student_v6/README.md)
HELIX_E2E_A = 23.0


def study_series(folder: Path) -> dict[str, np.ndarray]:
    """Time (ps), ab/30 and e2e (Å) at the lowest temperature, one record per MD step (the last written wins)."""
    settings = StudySettings.load(folder)
    columns = plumed_files.read_plumed(folder / "COLVAR.T0")
    for name in ("time", "ab", "e2e"):
        if name not in columns:
            raise SystemExit(f"{folder}/COLVAR.T0 has no column {name!r}: not a helix-torsions study")
    steps = columns["time"]
    _, last = np.unique(steps[::-1], return_index=True)  # a resumed piece may rewrite steps: keep the newest
    keep = np.sort(len(steps) - 1 - last)
    return {"time_ps": steps[keep] * settings.timestep_fs * 1e-3, "helicity": columns["ab"][keep] / TORSIONS,
            "e2e_A": columns["e2e"][keep], "temperature_K": settings.temperatures[0]}


def window_means(series: dict[str, np.ndarray], window_ps: float) -> dict[str, list[float]]:
    edges = np.arange(0.0, series["time_ps"].max() + window_ps, window_ps)
    index = np.digitize(series["time_ps"], edges) - 1
    rows = [(edges[k] + window_ps / 2, series["helicity"][index == k].mean(), series["e2e_A"][index == k].mean())
            for k in range(len(edges) - 1) if np.any(index == k)]
    centre, helicity, e2e = (np.round(np.array(column), 3).tolist() for column in zip(*rows))
    return {"window_centre_ps": centre, "helicity": helicity, "e2e_A": e2e}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("studies", nargs="+", metavar="LABEL=DIR")
    parser.add_argument("--out", required=True, metavar="PREFIX", help="writes PREFIX.png and PREFIX.json")
    parser.add_argument("--window-ps", type=float, default=10.0, help="averaging window in ps (default 10)")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report, (top, bottom) = {}, plt.subplots(2, 1, figsize=(8, 6.5), sharex=True)[1]
    for entry in args.studies:
        label, _, folder = entry.partition("=")
        if not folder:
            sys.exit(f"expected LABEL=DIR, got {entry!r}")
        series = study_series(Path(folder))
        means = window_means(series, args.window_ps)
        last = series["time_ps"] >= 0.75 * series["time_ps"].max()
        report[label] = {"folder": folder, "temperature_K": series["temperature_K"],
                         "simulated_ps": round(float(series["time_ps"].max()), 2),
                         "last_quarter_helicity": round(float(series["helicity"][last].mean()), 3),
                         "last_quarter_e2e_A": round(float(series["e2e_A"][last].mean()), 2),
                         "max_helicity": round(float(series["helicity"].max()), 3),
                         "min_e2e_A": round(float(series["e2e_A"].min()), 2), **means}
        top.plot(means["window_centre_ps"], means["helicity"], marker=".", label=f"{label} ({series['temperature_K']:g} K)")
        bottom.plot(means["window_centre_ps"], means["e2e_A"], marker=".", label=label)
    top.axhline(HELIX_AB / TORSIONS, color="grey", linestyle="--", linewidth=0.8, label="shipped helix")
    bottom.axhline(HELIX_E2E_A, color="grey", linestyle="--", linewidth=0.8, label="shipped helix")
    top.set_ylabel("torsion helicity ab / 30")
    bottom.set_ylabel("end-to-end distance (Å)")
    bottom.set_xlabel("simulated time per replica (ps)")
    top.set_title(f"Lowest temperature, {args.window_ps:g} ps window means (biased, not reweighted)")
    top.legend(fontsize=8)
    bottom.legend(fontsize=8)
    plt.tight_layout()
    plt.savefig(f"{args.out}.png", dpi=120)
    Path(f"{args.out}.json").write_text(json.dumps({"units": {"time": "ps", "e2e": "Å", "helicity": "ab/30"},
                                                    "window_ps": args.window_ps, "studies": report}, indent=1) + "\n")
    for label, row in report.items():
        print(f"{label}: {row['simulated_ps']} ps, last quarter helicity {row['last_quarter_helicity']}, "
              f"e2e {row['last_quarter_e2e_A']} Å; max helicity {row['max_helicity']}, min e2e {row['min_e2e_A']} Å")


if __name__ == "__main__":
    main()
