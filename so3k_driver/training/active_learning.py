"""Active learning with a committee: find the frames the committee disagrees on most, for labelling.

The loop (docs/active_learning.md): sample with the committee (so3k sample / so3k label --sample-with),
select the most uncertain frames here, label them with the teacher (so3k label --sample-with none),
retrain the members on the grown data set (so3k train, one seed each) and combine them again
(so3k committee create).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..evaluation.frames import evaluate_frames


def committee_uncertainties(frames: list, potential, batch_size: int = 16, quiet: bool = False) -> np.ndarray:
    """(F, 2): per frame the committee's energy spread (eV, sample std) and its largest per-atom force
    spread (eV/Å); same-size frames are evaluated together."""
    if not getattr(potential, "committee_size", None):
        raise UserError(f"{potential.description or 'the model'} is not a committee (make one with so3k committee create)")
    spreads = np.zeros((len(frames), 2))
    for chunk, result in evaluate_frames(potential, frames, batch_size, "committee", quiet):
        spreads[chunk, 0] = result.extras["energy_uncertainty"]
        spreads[chunk, 1] = result.extras["force_uncertainty"].max(axis=1)
    return spreads


def most_uncertain(frames: list, spreads: np.ndarray, count: int, by: str = "forces") -> list:
    """The ``count`` frames with the largest spread (``by``: 'forces' or 'energy'), largest first,
    each with ``energy_uncertainty_eV`` and ``force_uncertainty_eV_per_A`` in its info."""
    if count < 1:
        raise UserError(f"the number of frames to select must be >= 1, got {count}")
    if by not in ("forces", "energy"):
        raise UserError(f"select by 'forces' or 'energy', got {by!r}")
    column = 1 if by == "forces" else 0
    order = np.argsort(-spreads[:, column], kind="stable")[:count]
    chosen = []
    for index in order:
        atoms = frames[index].copy()
        atoms.calc = None
        atoms.info.update(energy_uncertainty_eV=float(spreads[index, 0]),
                          force_uncertainty_eV_per_A=float(spreads[index, 1]), source_frame=int(index))
        chosen.append(atoms)
    return chosen
