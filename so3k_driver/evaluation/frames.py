"""Evaluate many ``ase.Atoms`` frames with a Potential: same-size frames (same elements in the same
order, same periodicity) go together, ``batch_size`` per call, whatever order they come in."""

from __future__ import annotations

import io
from typing import Iterator

import numpy as np

from ..progress import Progress


def evaluate_frames(potential, frames: list, batch_size: int = 16, description: str = "evaluating",
                    quiet: bool = False, **options) -> Iterator[tuple[list[int], object]]:
    """Yield (indices into ``frames``, ``Results`` for those frames in that order); ``options`` go to
    ``Potential.evaluate`` (e.g. total_charge). Shows progress on stderr unless ``quiet``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    groups: dict = {}
    for index, atoms in enumerate(frames):
        groups.setdefault((tuple(atoms.numbers), tuple(atoms.pbc)), []).append(index)
    with Progress(len(frames), description=description, unit="frame",
                  stream=io.StringIO() if quiet else None) as bar:
        done = 0
        for (numbers, pbc), indices in groups.items():
            periodic = any(pbc)
            for start in range(0, len(indices), batch_size):
                chunk = indices[start:start + batch_size]
                positions = np.stack([frames[i].positions for i in chunk])
                cells = np.stack([frames[i].cell.array for i in chunk]) if periodic else None
                yield chunk, potential.evaluate(np.asarray(numbers), positions, cells, pbc if periodic else False,
                                                **options)
                done += len(chunk)
                bar.update(done)
