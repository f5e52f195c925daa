"""evaluation/neighbors.py: the cached all-pairs list (periodic images: test_potential_physics.py)."""

import numpy as np
import pytest

from so3k_driver.evaluation.neighbors import all_pairs, half_pair_list


def test_all_pairs_is_the_half_list_of_an_infinite_cutoff_and_cannot_be_changed_by_a_caller():
    positions = np.random.default_rng(3).uniform(0.0, 6.0, (9, 3))
    pairs = all_pairs(9)
    wide = half_pair_list(positions, 100.0, None, False)
    assert len(pairs) == 9 * 8 // 2
    assert sorted(zip(pairs.first, pairs.second)) == sorted(zip(np.minimum(wide.first, wide.second),
                                                                 np.maximum(wide.first, wide.second)))
    assert np.all(pairs.shifts == 0.0) and all_pairs(9) is pairs  # built once per atom count
    with pytest.raises(ValueError):
        pairs.first[0] = 1  # shared between calls: a caller writing into it would corrupt later ones


def test_the_gas_phase_list_holds_every_pair_within_the_cutoff_once():
    positions = np.random.default_rng(5).uniform(0.0, 8.0, (60, 3))
    pairs = half_pair_list(positions, 3.0, None, False)
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    expected = {(i, j) for i, j in zip(*np.nonzero(distances < 3.0)) if i < j}
    found = [(min(a, b), max(a, b)) for a, b in zip(pairs.first, pairs.second)]
    assert len(found) == len(set(found)) == len(expected) > 50 and set(found) == expected
    assert pairs.first.dtype == np.int64 and pairs.shifts.shape == (len(found), 3) and not pairs.shifts.any()
