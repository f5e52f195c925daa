"""Training and held-out test frames for distilling SO3LR into a student, from i-PI sampling studies.

  .venv/bin/python bench/make_distill_data.py --out DIR STUDY_DIR [STUDY_DIR ...] [--test-fraction 0.2]

Each STUDY_DIR is a ``so3k sample`` folder (replica exchange, one ``T-k_*.pos_0.xyz`` trajectory per
temperature). Frames are tagged with ``temperature_K``, ``md_step``, ``time_ps`` and ``source`` (the
study's starting structure), split by time (the last ``--test-fraction`` of every study's steps are
test frames, so a test frame is never a close neighbour in time of a training frame), thinned
(``--train-every``, ``--test-every``) and labelled with the teacher (SO3LR, gas phase, all pairs;
float64 for test frames, ``--train-dtype`` for training frames): energy eV, forces eV/Å, per-atom
``partial_charges`` (e) and ``hirshfeld_ratios``. Writes DIR/train.extxyz and DIR/test.extxyz.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ase import Atoms

from so3k_driver.sampling.analysis.ipi_outputs import find_systems, read_xyz_frames
from so3k_driver.training.labelling import ModelLabeller, label_with_model, write_frames

SO3LR = f"so3lr:{Path(__file__).resolve().parents[2] / 'shared' / 'reference' / 'so3lr'}"


def study_frames(folder: Path) -> tuple[list[Atoms], int]:
    """Every trajectory frame of a replica-exchange study (the start frame once), and its total steps."""
    study = json.loads((folder / "study.json").read_text())
    import ase.io

    numbers = ase.io.read(folder / "init.xyz").numbers
    temperatures = study["temperatures"]
    stride, timestep = study["output_stride"], study["timestep_fs"]
    frames = []
    for _, trajectory in find_systems(folder):
        k = int(trajectory.name[2:].split("_")[0])
        _, positions = read_xyz_frames(trajectory)
        for f, frame in enumerate(positions):
            if f == 0 and k > 0:
                continue  # every replica starts from the same structure
            step = f * stride
            atoms = Atoms(numbers=numbers, positions=frame)
            atoms.info.update(temperature_K=float(temperatures[k]), md_step=step, time_ps=step * timestep / 1000,
                              source=Path(study["structure"]).name)
            frames.append(atoms)
    last = max(a.info["md_step"] for a in frames)
    return frames, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--teacher", default=SO3LR)
    parser.add_argument("--train-every", type=int, default=1, help="keep every N-th training frame of a trajectory")
    parser.add_argument("--test-every", type=int, default=1, help="keep every N-th test frame of a trajectory")
    parser.add_argument("--train-dtype", default="float64", help="teacher precision for the training labels "
                        "(test labels are always float64)")
    args = parser.parse_args()
    train, test = [], []
    for folder in args.studies:
        frames, last = study_frames(folder)
        split = (1.0 - args.test_fraction) * last
        stride = study_output_stride(folder)
        train += [a for a in frames if a.info["md_step"] <= split and (a.info["md_step"] // stride) % args.train_every == 0]
        test += [a for a in frames if a.info["md_step"] > split and (a.info["md_step"] // stride) % args.test_every == 0]
        print(f"{folder}: {len(frames)} frames, steps 0-{last}; test frames after step {split:.0f}")
    for name, frames, dtype in (("test", test, "float64"), ("train", train, args.train_dtype)):
        teacher = ModelLabeller(args.teacher, dtype=dtype, lr_cutoff=None, batch_size=16)
        labelled = label_with_model(frames, teacher)
        for atoms in labelled:
            atoms.info["teacher_dtype"] = dtype
        path = write_frames(labelled, args.out / f"{name}.extxyz")
        print(f"wrote {len(frames)} frames to {path} ({dtype} labels)")


def study_output_stride(folder: Path) -> int:
    return int(json.loads((folder / "study.json").read_text())["output_stride"])


if __name__ == "__main__":
    main()
