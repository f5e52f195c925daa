"""Input checks: bad structures get a one-line InputError naming the problem."""

import numpy as np
import pytest

from conftest import SO3KRATES_RANDOM
from so3k_driver.errors import InputError

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def small_species_potential(so3krates32):
    """The random reference weights restricted to H, C, N, O, as a trained model would be."""
    import dataclasses

    from so3k_driver.io.model_files import load_model
    from so3k_driver.evaluation.potential import Potential

    config, params, _ = load_model(SO3KRATES_RANDOM)
    return Potential(dataclasses.replace(config, species=(1, 6, 7, 8)), params)


def ethanol():
    numbers = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    positions = np.array([
        [1.222, -0.382, 0.0], [0.054, 0.578, 0.0], [-1.136, -0.209, 0.0], [-1.893, 0.400, 0.0],
        [0.096, 1.226, 0.887], [0.096, 1.226, -0.887], [2.170, 0.163, 0.0], [1.182, -1.019, 0.886],
        [1.182, -1.019, -0.886],
    ])
    return numbers, positions


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda z, r: (np.where(np.arange(len(z)) == 2, 14, z), r), "Si"),
        (lambda z, r: (z, np.where(np.arange(len(z))[:, None] == 4, np.nan, r)), "non-finite"),
        (lambda z, r: (z, np.vstack([r[:-1], r[:1] + 0.05])), "apart"),
        (lambda z, r: (z[:0], r[:0]), "empty"),
        (lambda z, r: (z, r[:-1]), "mismatched"),
    ],
    ids=["unknown-element", "nan", "close-atoms", "empty", "mismatched"],
)
def test_bad_structures_raise_one_line_errors(small_species_potential, mutate, message):
    numbers, positions = mutate(*ethanol())
    with pytest.raises(InputError) as info:
        small_species_potential.evaluate(numbers, positions)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_degenerate_periodic_cell_is_refused(small_species_potential):
    numbers, positions = ethanol()
    flat = np.array([[5.0, 0, 0], [0, 5.0, 0], [5.0, 5.0, 0]])
    with pytest.raises(InputError, match="degenerate"):
        small_species_potential.evaluate(numbers, positions, flat, True)
