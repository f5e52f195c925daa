"""Starting frames for a run that asks which helix a model keeps: 3₁₀-rich and α-rich helices of a study.

    python bench/pick_frames_by_shape.py RUN_DIR HELICES.extxyz --shapes helix --split-helices --per-shape 100000
    python bench/pick_helix_starts.py HELICES.extxyz STARTS.extxyz [--three-ten 6] [--alpha 2] [--min-helical 13]

A 3₁₀-rich frame has >= --min-helical residues with helical φ/ψ, >= 8 i→i+3 and <= 2 i→i+4 backbone
H-bonds; an α-rich frame >= --min-helical helical residues and >= 10 i→i+4 H-bonds. Frames are taken in
turn from each configuration, evenly spread in time within it, so that the starts are as independent as the
study allows. The α frames are put at every (N / alpha)-th place (with 6 + 2: places 2 and 6), so that a
replica-exchange ladder starts them at low and high temperatures alike. Each frame keeps the info of
pick_frames_by_shape.py (configuration, time_ps, H-bond counts, end_to_end_A) and gains ``start_kind``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
from ase.io import read, write


def spread_pick(frames: list, count: int) -> list:
    """count frames, round robin over configurations, evenly spaced in time within each."""
    by_configuration = defaultdict(list)
    for atoms in sorted(frames, key=lambda a: float(a.info["time_ps"])):
        by_configuration[int(atoms.info["configuration"])].append(atoms)
    quota = dict.fromkeys(by_configuration, 0)
    for turn in range(count):
        open_ = [c for c in sorted(by_configuration) if quota[c] < len(by_configuration[c])]
        if not open_:
            raise SystemExit(f"only {turn} frames qualify, {count} asked")
        quota[open_[turn % len(open_)]] += 1
    picked = []
    for configuration, number in quota.items():
        pool = by_configuration[configuration]
        picked += [pool[int(i)] for i in np.linspace(0, len(pool) - 1, number).round()] if number else []
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("helices")
    parser.add_argument("out")
    parser.add_argument("--three-ten", type=int, default=6)
    parser.add_argument("--alpha", type=int, default=2)
    parser.add_argument("--min-helical", type=int, default=13)
    args = parser.parse_args()
    frames = read(args.helices, ":")
    helical = [a for a in frames if a.info["helical_residues"] >= args.min_helical]
    three_ten = [a for a in helical if a.info["three_ten_hbonds"] >= 8 and a.info["alpha_hbonds"] <= 2]
    alpha = [a for a in helical if a.info["alpha_hbonds"] >= 10]
    picks_310 = spread_pick(three_ten, args.three_ten)
    picks_alpha = spread_pick(alpha, args.alpha) if args.alpha else []
    for atoms in picks_310:
        atoms.info["start_kind"] = "3-10"
    for atoms in picks_alpha:
        atoms.info["start_kind"] = "alpha"
    total = len(picks_310) + len(picks_alpha)
    alpha_places = {int(round((k + 0.5) * total / len(picks_alpha))) for k in range(len(picks_alpha))}
    starts, rest_310, rest_alpha = [], iter(picks_310), iter(picks_alpha)
    for place in range(total):
        starts.append(next(rest_alpha) if place in alpha_places else next(rest_310))
    write(args.out, starts, format="extxyz")
    print(f"{len(three_ten)} 3₁₀-rich and {len(alpha)} α-rich frames qualify; wrote {total} to {args.out}")
    for place, atoms in enumerate(starts):
        i = atoms.info
        print(f"  start {place}: {i['start_kind']:5s} configuration {i['configuration']} at {float(i['time_ps']):6.1f} ps, "
              f"{i['helical_residues']}/15 helical, α {i['alpha_hbonds']}, 3₁₀ {i['three_ten_hbonds']}, "
              f"end to end {float(i['end_to_end_A']):.1f} Å")


if __name__ == "__main__":
    main()
