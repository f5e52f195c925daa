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
