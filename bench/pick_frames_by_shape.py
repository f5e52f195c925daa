"""Pick Ac-Ala15-NHMe frames of a study by shape, for a held-out check of a student (issue #11).

    python bench/pick_frames_by_shape.py RUN_DIR OUT.extxyz [--per-shape 40] [--skip-ps 20] [--seed 7]
    python bench/pick_frames_by_shape.py RUN_DIR OUT.extxyz --every 4 --until-ps 192    # training data

Reads every ``RUN_DIR/*.pos_0.xyz`` (i-PI's REMD trajectories, one per configuration), drops the first
``--skip-ps`` picoseconds, sorts the remaining frames into three shapes and picks ``--per-shape`` of each at
random: helix (>= 9 of 15 residues with helical phi/psi), globule (<= 3 helical, end to end < 32 Å) and
extended (<= 3 helical, > 42 Å). Each frame's info records shape, configuration, time (ps), helical
residues, α (i→i+4) and 3₁₀ (i→i+3) backbone H-bonds and end-to-end distance (Å). With ``--every N`` it keeps every N-th frame of each trajectory
instead, whatever its shape (``other`` when none of the three), and every N/2-th of the helices, which are
rare: training data. ``--shapes helix`` keeps only the helices. ``--until-ps`` leaves out what came later, for a test set split in time. ``--split-helices`` names a
helix ``3-10`` or ``alpha`` by which of its H-bond counts is larger (alpha on a tie), and
``--group-prefix "v13 "`` puts a prefix before every shape name, for frames of several studies in one file. Label the file with ``so3k label OUT --sample-with none ...`` and
compare models with ``bench/errors_by_shape.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SHAPES = ("helix", "globule", "extended")


def shape_of(helical_residues: int, end_to_end: float) -> str | None:
    if helical_residues >= 9:
        return "helix"
    if helical_residues <= 3 and end_to_end < 32.0:
        return "globule"
    if helical_residues <= 3 and end_to_end > 42.0:
        return "extended"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--per-shape", type=int, default=40, help="frames per shape (default %(default)s)")
    parser.add_argument("--skip-ps", type=float, default=20.0, help="ps dropped at the start (default %(default)s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--until-ps", type=float, default=float("inf"), help="ps after which frames are left out")
    parser.add_argument("--every", type=int, help="keep every N-th frame of every shape (training data)")
    parser.add_argument("--shapes", default=",".join((*SHAPES, "other")),
                        help="comma-separated shapes to keep (default: all; e.g. helix)")
    parser.add_argument("--split-helices", action="store_true",
                        help="name helices '3-10' or 'alpha' by their larger H-bond count")
    parser.add_argument("--group-prefix", default="", help="prefix of every shape name written (e.g. 'v13 ')")
    args = parser.parse_args()

    import ase
    import ase.io

    from so3k_driver.sampling import peptide
    from so3k_driver.sampling.analysis.ipi_outputs import atomic_numbers_of, read_xyz_frames

    paths = sorted(Path(args.run_dir).glob("*.pos_0.xyz"))
    if not paths:
        raise SystemExit(f"{args.run_dir}: no *.pos_0.xyz trajectories")
    kept = set(args.shapes.split(","))
    if not kept <= {*SHAPES, "other"}:
        raise SystemExit(f"--shapes {args.shapes}: choose from {', '.join((*SHAPES, 'other'))}")
    candidates: dict[str, list] = {shape: [] for shape in (*SHAPES, "other") if shape in kept}
    timestep_ps = _timestep_ps(Path(args.run_dir))
    for configuration, path in enumerate(paths):
        symbols, frames = read_xyz_frames(path)
        steps = np.array([int(line.split("Step:")[1].split()[0]) for line in path.read_text().splitlines()
                          if "Step:" in line])
        numbers = atomic_numbers_of(symbols)
        backbone = peptide.find_backbone(numbers, frames[0])
        helical = peptide.helical_mask(frames, backbone).sum(axis=1)
        e2e = peptide.distance(frames, *backbone.end_to_end_atoms())
        alpha, three_ten = (peptide.helix_hbonds(frames, backbone, span=span).sum(axis=1) for span in (4, 3))
        for i in range(len(frames)):
            time_ps = steps[i] * timestep_ps
            shape = shape_of(int(helical[i]), float(e2e[i])) or ("other" if args.every else None)
            if args.every and i % (args.every if shape != "helix" else max(1, args.every // 2)):
                continue
            if args.skip_ps <= time_ps <= args.until_ps and shape in candidates:
                candidates[shape].append(dict(configuration=configuration, time_ps=time_ps, shape=shape,
                                              helical_residues=int(helical[i]), end_to_end_A=float(e2e[i]),
                                              alpha_hbonds=int(alpha[i]), three_ten_hbonds=int(three_ten[i]),
                                              symbols=symbols, positions=frames[i]))
    rng = np.random.default_rng(args.seed)
    picked = []
    for shape, items in candidates.items():
        configurations = sorted({item["configuration"] for item in items})
        print(f"{shape}: {len(items)} candidates in configurations {configurations}")
        chosen = range(len(items)) if args.every else sorted(
            rng.choice(len(items), size=min(args.per_shape, len(items)), replace=False))
        for j in chosen:
            item = dict(items[j])
            item["shape"] = args.group_prefix + _group(item, args.split_helices)
            atoms = ase.Atoms(item.pop("symbols"), positions=item.pop("positions"))
            atoms.info.update(item)
            picked.append(atoms)
    ase.io.write(args.out, picked, format="extxyz")
    print(f"wrote {len(picked)} frames to {args.out}")


def _group(item: dict, split_helices: bool) -> str:
    if not split_helices or item["shape"] != "helix":
        return item["shape"]
    return "3-10" if item["three_ten_hbonds"] > item["alpha_hbonds"] else "alpha"


def _timestep_ps(run_dir: Path) -> float:
    import json

    study = json.loads((run_dir / "study.json").read_text())
    return float(study["timestep_fs"]) / 1000.0


if __name__ == "__main__":
    sys.exit(main())
