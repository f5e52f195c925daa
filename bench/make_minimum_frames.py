"""Near-minimum Ac-Ala15-NHMe geometries for distillation: start frames relaxed by a model, in two stages.

  .venv/bin/python bench/make_minimum_frames.py MODEL OUT.xyz FRAMES.extxyz[:COUNT] ... [--early-steps 30]
      [--fmax 0.05] [--noise 0.03] [--seed 0] [--lr-cutoff 0] [--dtype float32]

MD frames at 300-600 K hold no structure near a minimum, yet a folding study's verdict rests on the
energies of minima (relaxed helix minus relaxed extended chain). For each start frame (COUNT drawn at
random from each FRAMES file, seeded) this writes three unlabelled frames: after ``--early-steps``
L-BFGS steps with MODEL (half-relaxed), the minimum (max force < ``--fmax`` eV/Å), and the minimum with
``--noise`` Å of Gaussian noise on every atom (curvature around it). ``info['stage']`` says which,
``info['start']`` the source. Label them with ``so3k label OUT.xyz --sample-with none --labeller ...``.
MODEL is the teacher (e.g. ``so3lr:DIR``, all pairs with ``--lr-cutoff 0``), so the minima are the
teacher's.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import ase
import ase.io
import numpy as np

from so3k_driver.evaluation.minimise import minimise
from so3k_driver.evaluation.optimizers import LbfgsSettings
from so3k_driver.evaluation.potential import Potential


def pick_frames(sources: list[str], rng) -> list[ase.Atoms]:
    picked = []
    for source in sources:
        path, _, count = source.partition(":")
        frames = ase.io.read(path, index=":")
        chosen = rng.choice(len(frames), size=min(int(count or len(frames)), len(frames)), replace=False)
        for index in sorted(chosen):
            atoms = frames[index]
            atoms.info = {"start": f"{path}#{index}"}
            picked.append(atoms)
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("frames", nargs="+", help="FILE or FILE:COUNT (COUNT frames drawn at random)")
    parser.add_argument("--early-steps", type=int, default=30)
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/Å")
    parser.add_argument("--noise", type=float, default=0.03, help="Å")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr-cutoff", type=float, default=0.0, help="Å; 0 = all pairs")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    starts = pick_frames(args.frames, rng)
    potential = Potential.load(args.model, dtype=args.dtype, lr_cutoff=args.lr_cutoff or None)
    settings = LbfgsSettings(fmax=args.fmax)
    groups: dict[tuple, list[int]] = {}  # one minimise() per atom order (helix and extended files differ)
    for index, atoms in enumerate(starts):
        groups.setdefault(tuple(atoms.numbers), []).append(index)
    out, begin = [], time.perf_counter()
    for numbers, members in groups.items():
        numbers = np.array(numbers)
        positions = np.stack([starts[i].positions for i in members])
        early = minimise(potential, numbers, positions, dataclasses.replace(settings, max_steps=args.early_steps))
        final = minimise(potential, numbers, early.positions, settings,
                         on_progress=lambda done, ok: print(f"[minimum-frames] relaxed {done}/{len(members)}, "
                                                            f"converged {ok}", flush=True))
        print(f"[minimum-frames] group of {len(members)}: converged {int(final.converged.sum())}, "
              f"broken {int(final.broken.sum())}, {time.perf_counter() - begin:.0f} s", flush=True)
        for b, i in enumerate(members):
            if not final.converged[b]:
                continue
            noisy = final.positions[b] + rng.normal(0, args.noise, final.positions[b].shape)
            for stage, pos in (("early", early.positions[b]), ("minimum", final.positions[b]),
                               ("noisy_minimum", noisy)):
                atoms = ase.Atoms(numbers, pos)
                atoms.info = {"start": starts[i].info["start"], "stage": stage,
                              "relax_energy_eV": float(final.energy[b]) if stage == "minimum" else float("nan")}
                out.append(atoms)
    ase.io.write(args.out, out, format="extxyz")
    print(f"[minimum-frames] wrote {len(out)} frames to {args.out}")


if __name__ == "__main__":
    main()
