"""Combine labelled Ac-Ala3-NHMe GFN2-xTB trajectories into the training file of the ala3-xtb model.

  .venv/bin/python bench/make_ala3_xtb_data.py OUT.extxyz SPACING_FS:FILE [SPACING_FS:FILE ...]

Each input is an extxyz file written by ``so3k label``; every frame gets ``spacing_fs`` (the time
between kept frames of its trajectory) and ``source`` (the input file name) in its info, so that
bench/package_ala3_xtb_model.py can ship held-out frames from the less correlated trajectories only.
Frames are written in the order given (energies eV, forces eV/Å, unchanged).
"""

from __future__ import annotations

import sys
from pathlib import Path

import ase.io


def main(output: str, inputs: list[str]) -> None:
    frames = []
    for item in inputs:
        spacing, _, path = item.partition(":")
        for atoms in ase.io.read(path, index=":"):
            atoms.info.update(spacing_fs=float(spacing), source=Path(path).name)
            frames.append(atoms)
        print(f"{path}: {len(frames)} frames so far ({spacing} fs apart)")
    ase.io.write(output, frames, format="extxyz")
    print(f"wrote {len(frames)} frames to {output}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
