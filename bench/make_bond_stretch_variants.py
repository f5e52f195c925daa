"""Frames with stretched and compressed covalent bonds, for teaching a student the walls of bond stretching.

Why: distilled students (docs/results/so3lr_student_v2, v3) learn SO3LR near thermal geometries only.
At 500 K a rare large bond excursion then meets a potential that is too soft beyond the data, and the
bond breaks (v2: Cα–C after 1.3 ps; v3: a Cα–H after 24 ps, C–H 1.36 Å → 1.75 Å in 8 fs). These
frames put labelled points on the stretching walls: in each chosen frame a few X–H bonds are set to
factor × their length by moving the H along the bond, and one bond between heavy atoms by moving both
atoms apart symmetrically (its neighbours' bonds bend and stretch with it).

    python bench/make_bond_stretch_variants.py FRAMES.extxyz --count 240 --out stretched.xyz
    so3k label stretched.xyz --sample-with none --labeller so3lr:DIR --lr-cutoff 0 --dtype float32 -o labelled.extxyz

Factors (× the frame's own bond length): by default X–H uniform in [0.85, 1.45] (C–H 0.93–1.58 Å),
heavy-atom bonds in [0.9, 1.3] (C–C 1.37–1.98 Å). Student v4 used these 240 frames plus 240 with
--hydrogen-factors 1.2 1.65 --heavy-factors 1.2 1.6 --seed 1, reaching the bond guard's limit of
1.6 × the sum of covalent radii (C–H 1.71 Å, C–C 2.43 Å), where SO3LR's energy has risen by 2–6 eV.
"""

from __future__ import annotations

import argparse

import numpy as np
from ase.io import read, write

from so3k_driver.evaluation.topology import TOPOLOGY_BOND_SCALE, bond_pairs

HYDROGEN_FACTORS = (0.85, 1.45)
HEAVY_FACTORS = (0.9, 1.3)


def stretched(atoms, rng, hydrogens_per_frame: int, heavy_per_frame: int,
              hydrogen_factors=HYDROGEN_FACTORS, heavy_factors=HEAVY_FACTORS, bonded_to: int | None = None):
    """A copy of ``atoms`` with some bonds set to random factors of their length (Å).

    bonded_to: only X–H bonds whose X has this atomic number (e.g. 7: the amide N–H bonds)."""
    atoms = atoms.copy()
    atoms.calc = None
    atoms.info = {}
    atoms.arrays = {k: v for k, v in atoms.arrays.items() if k in ("numbers", "positions")}
    numbers = atoms.numbers
    pairs = bond_pairs(numbers, atoms.positions, TOPOLOGY_BOND_SCALE)
    is_h = numbers[pairs] == 1
    x_h = pairs[is_h.any(axis=1) & ~is_h.all(axis=1)]
    if bonded_to is not None:
        x_h = x_h[(numbers[x_h] == bonded_to).any(axis=1)]
    heavy = pairs[~is_h.any(axis=1)]
    positions = atoms.positions
    for i, j in x_h[rng.choice(len(x_h), size=min(hydrogens_per_frame, len(x_h)), replace=False)]:
        heavy_atom, hydrogen = (i, j) if numbers[j] == 1 else (j, i)
        bond = positions[hydrogen] - positions[heavy_atom]
        positions[hydrogen] = positions[heavy_atom] + bond * rng.uniform(*hydrogen_factors)
    for i, j in heavy[rng.choice(len(heavy), size=min(heavy_per_frame, len(heavy)), replace=False)]:
        bond = positions[j] - positions[i]
        shift = 0.5 * (rng.uniform(*heavy_factors) - 1.0) * bond
        positions[i] -= shift
        positions[j] += shift
    atoms.positions = positions
    atoms.info["variant"] = "bond_stretch"
    return atoms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("frames", help="source frames (any file ASE reads; Å)")
    parser.add_argument("--count", type=int, default=240, help="frames to write")
    parser.add_argument("--hydrogens", type=int, default=3, help="X–H bonds changed per frame")
    parser.add_argument("--heavy", type=int, default=1, help="bonds between heavy atoms changed per frame")
    parser.add_argument("--hydrogen-factors", type=float, nargs=2, default=HYDROGEN_FACTORS, metavar=("LOW", "HIGH"),
                        help="range of X–H length factors (default %(default)s)")
    parser.add_argument("--heavy-factors", type=float, nargs=2, default=HEAVY_FACTORS, metavar=("LOW", "HIGH"),
                        help="range of heavy-atom bond length factors (default %(default)s)")
    parser.add_argument("--bonded-to", type=int, default=None, metavar="Z",
                        help="only X–H bonds whose X has atomic number Z (e.g. 7 for N–H; default: any)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output xyz (Å)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    source = read(args.frames, index=":")
    chosen = rng.choice(len(source), size=args.count, replace=args.count > len(source))
    write(args.out, [stretched(source[k], rng, args.hydrogens, args.heavy, args.hydrogen_factors, args.heavy_factors,
                               args.bonded_to) for k in chosen])
    print(f"wrote {args.count} frames with stretched bonds to {args.out} (from {len(source)} in {args.frames})")


if __name__ == "__main__":
    main()
