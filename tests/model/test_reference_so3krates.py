"""The model computes what the authors' SO3krates computes (reference from their code)."""

import numpy as np
import pytest

pytestmark = pytest.mark.shared


def test_energy_and_forces_match_authors_float32(so3krates32, ala3_reference):
    ref = ala3_reference
    results = so3krates32.evaluate(ref["numbers"], ref["positions"])
    assert abs(results.energy[0] - float(ref["energy"])) <= 1e-5
    assert np.abs(results.forces[0] - ref["forces"]).max() <= 1e-6


def test_float64_agrees_with_float32_reference(so3krates64, ala3_reference):
    ref = ala3_reference
    results = so3krates64.evaluate(ref["numbers"], ref["positions"])
    assert abs(results.energy[0] - float(ref["energy"])) <= 1e-5
    assert np.abs(results.forces[0] - ref["forces"]).max() <= 1e-6


def test_pair_list_matches_authors(ala3_reference):
    from so3k_driver.evaluation.neighbors import half_pair_list

    ref = ala3_reference
    pairs = half_pair_list(ref["positions"], 5.0, None, False)
    ours = {(int(a), int(b)) for a, b in zip(pairs.first, pairs.second)}
    ours |= {(b, a) for a, b in ours}
    theirs = {(int(i), int(j)) for i, j in zip(ref["idx_i"], ref["idx_j"])}
    assert ours == theirs and len(theirs) == 806
