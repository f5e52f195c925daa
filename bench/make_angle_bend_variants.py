"""Frames with collapsed X–V–H bond angles, for teaching a student the walls of angle bending.

Why: student v13's folding study visits N(i)–Cα(i)–Hα(i) angles near 65° (N···Hα 1.34–1.49 Å) in brief
episodes at 347–500 K, which SO3LR's own study never reaches, and there v13 puts the frame ~2 eV below SO3LR
(docs/results/ala15_folding_student_v13/, "Collapsed N–Cα–Hα angles"). Along the angle SO3LR's energy at
66° is 2.1–2.4 eV above the rest angle, the students' 0.5–1.25 eV (bench/angle_scan.py): their data held no
such geometry. In each chosen frame a few hydrogens are turned about the heavy atom V they are bonded to, in
the plane of another neighbour X of V, to an X–V–H angle drawn uniformly from --angles (the V–H length
kept).

    python bench/make_angle_bend_variants.py FRAMES.extxyz --count 300 --out bent.xyz
    so3k label bent.xyz --sample-with none --labeller so3lr:DIR --lr-cutoff 0 --dtype float32 -o labelled.extxyz
"""

from __future__ import annotations

import argparse

import numpy as np

ANGLES_DEG = (52.0, 95.0)


def bent(positions, x: int, vertex: int, h: int, angle_deg: float) -> np.ndarray:
    """A copy of positions (Å) with atom h turned about ``vertex`` in the x–vertex–h plane to the angle
    x–vertex–h = angle_deg, its distance to the vertex kept."""
    out = np.array(positions, dtype=np.float64, copy=True)
    to_x = out[x] - out[vertex]
    to_h = out[h] - out[vertex]
    e1 = to_x / np.linalg.norm(to_x)
    e2 = to_h - (to_h @ e1) * e1
    e2 /= np.linalg.norm(e2)
    angle = np.radians(angle_deg)
    out[h] = out[vertex] + np.linalg.norm(to_h) * (np.cos(angle) * e1 + np.sin(angle) * e2)
    return out


def hydrogen_angles(numbers, positions) -> list[tuple[int, int, int]]:
    """Every (x, vertex, h): h a hydrogen bonded to the heavy atom vertex, x another neighbour of vertex."""
    from so3k_driver.evaluation.topology import bond_graph

    graph = bond_graph(numbers, positions)
    return [(x, vertex, h) for vertex in range(len(numbers)) if numbers[vertex] != 1
            for h in graph[vertex] if numbers[h] == 1 for x in graph[vertex] if x != h]


def bend_frame(atoms, rng, per_frame: int, angles=ANGLES_DEG):
    """A copy of ``atoms`` (positions only) with ``per_frame`` hydrogens bent, each to its own angle; the
    info records the angles set as 'X1-C2-H3:64.2;...'."""
    from so3k_driver.evaluation.topology import atom_label

    out = atoms.copy()
    out.calc = None
    out.info = {}
    out.arrays = {k: v for k, v in out.arrays.items() if k in ("numbers", "positions")}
    triples = hydrogen_angles(out.numbers, out.positions)
    moved, done = set(), []
    for k in rng.permutation(len(triples)):
        x, vertex, h = triples[k]
        if h in moved:
            continue
        angle = rng.uniform(*angles)
        out.positions = bent(out.positions, x, vertex, h, angle)
        moved.add(h)
        done.append(f"{'-'.join(atom_label(out.numbers, i) for i in (x, vertex, h))}:{angle:.1f}")
        if len(done) == per_frame:
            break
    out.info.update(variant="angle_bend", bent_angles=";".join(done))
    return out


def main() -> None:
    from ase.io import read, write

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("frames", help="source frames (any file ASE reads; Å)")
    parser.add_argument("--count", type=int, default=300, help="frames to write")
    parser.add_argument("--per-frame", type=int, default=3, help="hydrogens bent per frame (default 3)")
    parser.add_argument("--angles", type=float, nargs=2, default=ANGLES_DEG, metavar=("LOW", "HIGH"),
                        help="range of X–V–H angles in degrees (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output xyz (Å)")
    args = parser.parse_args()
    if not 0 < args.angles[0] < args.angles[1] < 180:
        parser.error(f"--angles must be 0 < LOW < HIGH < 180 degrees, got {args.angles}")
    rng = np.random.default_rng(args.seed)
    source = read(args.frames, index=":")
    chosen = rng.choice(len(source), size=args.count, replace=args.count > len(source))
    frames = [bend_frame(source[i], rng, args.per_frame, args.angles) for i in chosen]
    write(args.out, frames, format="extxyz")
    print(f"wrote {len(frames)} frames to {args.out}: {args.per_frame} X–V–H angles per frame set to "
          f"{args.angles[0]:g}–{args.angles[1]:g}°")


if __name__ == "__main__":
    main()
