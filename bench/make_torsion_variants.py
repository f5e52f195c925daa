"""Partly helical and compact Ac-Ala15-NHMe geometries, for training data between the helix and the extended chain.

  .venv/bin/python bench/make_torsion_variants.py HELIX.xyz OUT.xyz --count 300 [--noise 0.04] [--seed 0]
      [--relax-with MODEL --relax-steps 40 --relax-noise 0.015]

MD at 300-600 K from the helix and from the extended chain stays near its start within a few picoseconds,
but a folding study visits everything in between. Each variant starts from the helix, sets the backbone
torsions (phi, psi) of a random contiguous run of residues (or of scattered residues) to values drawn from
the common basins (beta, PPII, C7eq, alpha_R, alpha_L), rotating the part of the chain beyond each bond,
rejects geometries with atoms of different residues closer than 1.8 Å, and adds Gaussian noise (Å) to all
positions. Raw variants sit ~12 eV above MD frames of the same chain (force RMS 2.3 vs 1.1 eV/Å with
SO3LR): ``--relax-with MODEL`` then takes ``--relax-steps`` batched FIRE steps with that model and adds
``--relax-noise`` Å of noise instead (the student v1 data: 40 steps with the stage-1 student, 0.015 Å,
giving SO3LR force RMS 0.85-1.2 eV/Å). The frames carry ``info['variant']`` (which residues were
changed) and are unlabelled.
"""

from __future__ import annotations

import argparse

import ase.io
import numpy as np

from so3k_driver.sampling.peptide import bond_graph, find_backbone

BASINS_DEG = {"beta": (-120, 130), "ppii": (-75, 145), "c7eq": (-80, 75), "alpha_r": (-63, -42), "alpha_l": (60, 45)}
BASIN_WEIGHTS = {"beta": 0.3, "ppii": 0.3, "c7eq": 0.15, "alpha_r": 0.15, "alpha_l": 0.1}


def moving_side(graph: list[set[int]], a: int, b: int) -> np.ndarray:
    """Atoms reached from ``b`` without crossing the bond a-b (the part that rotates about it)."""
    seen, stack = {b}, [b]
    while stack:
        for j in graph[stack.pop()]:
            if j != a and j not in seen:
                seen.add(j)
                stack.append(j)
    mask = np.zeros(len(graph), bool)
    mask[list(seen)] = True
    return mask


def variant(atoms, backbone, graph, rng, noise: float):
    new = atoms.copy()
    n = backbone.num_residues
    if rng.random() < 0.7:  # a contiguous unfolded stretch: partly helical chains
        start = int(rng.integers(0, n))
        stop = int(rng.integers(start + 1, n + 1))
        residues = list(range(start, stop))
    else:  # scattered residues: kinks and compact coils
        residues = sorted(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False).tolist())
    names = list(BASINS_DEG)
    weights = np.array([BASIN_WEIGHTS[k] for k in names])
    for r in residues:
        basin = names[rng.choice(len(names), p=weights / weights.sum())]
        phi, psi = np.array(BASINS_DEG[basin]) + rng.normal(0, 15, 2)
        for quad, angle in ((backbone.phi_atoms()[r], phi), (backbone.psi_atoms()[r], psi)):
            mask = moving_side(graph, quad[1], quad[2])
            new.set_dihedral(*quad, angle % 360, mask=mask)
    new.positions += rng.normal(0, noise, new.positions.shape)
    new.info["variant"] = ",".join(str(r + 1) for r in residues)
    return new


def clashes(atoms, graph, limit: float = 1.8) -> bool:
    distances = atoms.get_all_distances()
    close = np.argwhere(np.triu(distances < limit, k=1))
    for i, j in close:
        if j in graph[i] or graph[i] & graph[j]:  # bonded or 1-3 neighbours
            continue
        return True
    return False


def relaxed(frames, model: str, steps: int, noise: float, rng) -> list:
    """The frames after ``steps`` batched FIRE steps with ``model`` (float32, all pairs), plus noise (Å)."""
    from so3k_driver.evaluation.minimise import FireSettings, minimise
    from so3k_driver.evaluation.potential import Potential

    potential = Potential.load(model, dtype="float32", lr_cutoff=None)
    result = minimise(potential, frames[0].numbers, np.stack([a.positions for a in frames]),
                      FireSettings(fmax=0.3, max_steps=steps, steps_per_call=steps, structures_per_call=16))
    out = []
    for atoms, positions in zip(frames, result.positions):
        atoms = atoms.copy()
        atoms.positions = positions + rng.normal(0, noise, positions.shape)
        out.append(atoms)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("helix")
    parser.add_argument("output")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.04, help="Gaussian noise on positions, Å")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--relax-with", help="MODEL for a short relaxation of every variant")
    parser.add_argument("--relax-steps", type=int, default=40)
    parser.add_argument("--relax-noise", type=float, default=0.015, help="noise after relaxation, Å")
    args = parser.parse_args()
    helix = ase.io.read(args.helix)
    backbone = find_backbone(helix.numbers, helix.positions)
    graph = bond_graph(helix.numbers, helix.positions)
    rng = np.random.default_rng(args.seed)
    frames, tries = [], 0
    while len(frames) < args.count:
        tries += 1
        candidate = variant(helix, backbone, graph, rng, 0.0)
        if tries > 50 * args.count:
            raise SystemExit(f'only {len(frames)} of {args.count} variants without clashes after {tries} tries')
        if clashes(candidate, graph):
            continue
        candidate.positions += rng.normal(0, args.noise, candidate.positions.shape)
        frames.append(candidate)
    if args.relax_with:
        frames = relaxed(frames, args.relax_with, args.relax_steps, args.relax_noise, rng)
    ase.io.write(args.output, frames)
    ends = [np.linalg.norm(f.positions[backbone.cap_c] - f.positions[backbone.c[-1]]) for f in frames]
    print(f"wrote {len(frames)} variants ({tries} tries); end-to-end distance {min(ends):.1f}-{max(ends):.1f} Å, "
          f"median {np.median(ends):.1f} Å")


if __name__ == "__main__":
    main()
