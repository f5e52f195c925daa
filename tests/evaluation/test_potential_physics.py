"""Potential behaviour beyond the shared physics suite (tests/physics_suite.py): periodic images,
the float64 switch, compilation per bucket, batch splitting and repeated structures."""

import numpy as np
import pytest

from conftest import periodic_test_system

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def ala3(ala3_reference):
    return ala3_reference["numbers"], ala3_reference["positions"].astype(np.float64)


def test_several_periodic_images_are_counted(so3krates64):
    from so3k_driver.evaluation.neighbors import half_pair_list

    numbers, positions, cell = periodic_test_system()
    pairs = half_pair_list(positions, 5.0, cell, True)
    assert np.linalg.norm(pairs.shifts, axis=1).max() > 1.5 * np.linalg.norm(cell, axis=1).max()  # second images
    self_images = np.sum(pairs.first == pairs.second)
    assert self_images > 0  # an atom sees its own images: cutoff > half the cell


def test_float64_request_leaves_global_jax_setting_alone(so3krates64, ala3):
    import jax

    numbers, positions = ala3
    so3krates64.evaluate(numbers, positions)
    assert not jax.config.jax_enable_x64


def test_short_md_compiles_once_per_bucket(ala3):
    from conftest import SO3KRATES_RANDOM
    from so3k_driver.evaluation.potential import Potential

    potential = Potential.load(SO3KRATES_RANDOM)
    numbers, positions = ala3
    from ase.data import atomic_masses

    masses = atomic_masses[numbers][:, None] * 103.6427  # amu -> eV fs^2 / Å^2
    rng = np.random.default_rng(5)
    velocities = rng.normal(size=positions.shape) * np.sqrt(8.617e-5 * 1500 / masses)  # 1500 K, Å/fs
    dt = 0.5
    forces = potential.evaluate(numbers, positions).forces[0]
    capacities = set()
    for _ in range(60):
        velocities += 0.5 * dt * forces / masses
        positions = positions + dt * velocities
        forces = potential.evaluate(numbers, positions).forces[0]
        velocities += 0.5 * dt * forces / masses
        capacities.add(potential.pair_capacity(1, len(numbers)))
    assert potential.compile_count == len(capacities)
    assert potential.compile_count <= 2


def test_batches_split_into_calls_give_the_same_numbers(ala3):
    from conftest import SO3KRATES_RANDOM
    from so3k_driver.evaluation.potential import Potential

    numbers, positions = ala3
    rng = np.random.default_rng(6)
    batch = np.stack([positions + rng.normal(scale=0.03, size=positions.shape) for _ in range(5)])
    split = Potential.load(SO3KRATES_RANDOM, dtype="float64", pairs_per_call=1000)  # 2 per call (≈ 405 pairs each)
    whole = Potential.load(SO3KRATES_RANDOM, dtype="float64", pairs_per_call=None)
    a, b = split.evaluate(numbers, batch), whole.evaluate(numbers, batch)
    np.testing.assert_allclose(a.energy, b.energy, atol=1e-10)
    np.testing.assert_allclose(a.forces, b.forces, atol=1e-10)
    assert split.compile_count == 1  # the last, padded call has the same shape as the others


def test_repeated_last_structures_are_evaluated_once(ala3):
    """i-PI pads a short batch by repeating its last structure: the copies cost no model time."""
    from conftest import SO3KRATES_RANDOM
    from so3k_driver.evaluation.potential import Potential

    numbers, positions = ala3
    rng = np.random.default_rng(7)
    distinct = np.stack([positions + rng.normal(scale=0.03, size=positions.shape) for _ in range(3)])
    padded = np.concatenate([distinct, np.repeat(distinct[-1:], 3, axis=0)])  # 6 slots, 3 distinct
    potential = Potential.load(SO3KRATES_RANDOM, dtype="float64", pairs_per_call=1000)  # 2 per call
    structures_computed = []
    original_dispatch = potential._dispatch

    def counting_dispatch(index, batch, *args):
        structures_computed.append(len(batch.total_charge))  # structure slots of the call
        return original_dispatch(index, batch, *args)

    potential._dispatch = counting_dispatch
    result = potential.evaluate(numbers, padded)
    assert structures_computed == [2, 2]  # structures 0-1, then 2 (+ its call padding); not 3 calls
    single = Potential.load(SO3KRATES_RANDOM, dtype="float64", pairs_per_call=None).evaluate(numbers, distinct)
    np.testing.assert_allclose(result.energy, single.energy[[0, 1, 2, 2, 2, 2]], atol=1e-10)
    np.testing.assert_allclose(result.forces, single.forces[[0, 1, 2, 2, 2, 2]], atol=1e-10)
    structures_computed.clear()
    full = potential.evaluate(numbers, np.concatenate([distinct, distinct + 0.01]))  # no copies: 3 calls
    assert structures_computed == [2, 2, 2]
    np.testing.assert_allclose(full.energy[:3], single.energy, atol=1e-10)
    assert potential.compile_count == 1


def test_compiled_cost_describes_the_calls_evaluate_makes(ala3):
    """compiled_cost reports the calls of the batch split and XLA's costs of one; a model with one more
    layer costs more flops and more scratch memory per call, and nothing new is compiled for evaluate."""
    import dataclasses

    from conftest import SO3KRATES_RANDOM
    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.model.forces import initial_parameters

    numbers, positions = ala3
    batch = np.stack([positions + 0.01 * k for k in range(5)])
    potential = Potential.load(SO3KRATES_RANDOM, dtype="float32", pairs_per_call=1000)  # 2 per call
    cost = potential.compiled_cost(numbers, batch)
    assert (cost["calls"], cost["structures_per_call"]) == (3, 2)
    assert cost["flops"] > 0 and cost["temp_bytes"] > 0
    potential.evaluate(numbers, batch)
    assert potential.compile_count == 1  # the shape compiled_cost traced

    deeper_config = dataclasses.replace(potential.config, num_layers=potential.config.num_layers + 1)
    deeper = Potential(deeper_config, initial_parameters(deeper_config, seed=1), dtype="float32", pairs_per_call=1000)
    deeper_cost = deeper.compiled_cost(numbers, batch)
    assert deeper_cost["flops"] > 1.2 * cost["flops"]
    assert deeper_cost["temp_bytes"] > cost["temp_bytes"]


def test_cpu_pair_budget_can_be_set_from_the_environment(ala3, monkeypatch):
    """SO3K_CPU_PAIRS_PER_CALL replaces the CPU budget of pairs per call (float32; half in float64);
    a value that is not a positive whole number is a one-line input error."""
    from conftest import SO3KRATES_RANDOM
    from so3k_driver.errors import InputError
    from so3k_driver.evaluation.potential import CPU_PAIRS_ENVIRONMENT, Potential

    numbers, positions = ala3
    batch = np.stack([positions + 0.01 * k for k in range(5)])  # ≈ 405 pairs each
    monkeypatch.setenv(CPU_PAIRS_ENVIRONMENT, "2000")
    assert Potential.load(SO3KRATES_RANDOM, dtype="float64").compiled_cost(numbers, batch)["calls"] == 3  # 2 per call
    monkeypatch.setenv(CPU_PAIRS_ENVIRONMENT, "500")
    assert Potential.load(SO3KRATES_RANDOM, dtype="float32").compiled_cost(numbers, batch)["calls"] == 5  # 1 per call
    for bad in ("0", "-5", "lots"):
        monkeypatch.setenv(CPU_PAIRS_ENVIRONMENT, bad)
        with pytest.raises(InputError, match=CPU_PAIRS_ENVIRONMENT):
            Potential.load(SO3KRATES_RANDOM, dtype="float32")


def test_cpu_calls_keep_their_scratch_under_the_budget(ala3, monkeypatch):
    """On a CPU a batch is cut so that each call's scratch (XLA's temp buffer) stays under
    SCRATCH_BYTES_PER_CALL, estimated as SCRATCH_BYTES_PER_PAIR_LAYER_FEATURE x pairs x layers x features:
    the estimate must hold (paper SO3krates, 3 x 132: 86 bytes measured), or deep models fault again."""
    from conftest import SO3KRATES_RANDOM
    from so3k_driver.evaluation.neighbors import half_pair_list
    from so3k_driver.evaluation.potential import (CPU_PAIRS_ENVIRONMENT, CPU_PAIRS_PER_CALL, SCRATCH_BYTES_PER_CALL,
                                                  SCRATCH_BYTES_PER_PAIR_LAYER_FEATURE, Potential, cpu_pairs_per_call)

    monkeypatch.delenv(CPU_PAIRS_ENVIRONMENT, raising=False)
    numbers, positions = ala3
    potential = Potential.load(SO3KRATES_RANDOM, dtype="float32")
    config = potential.config
    assert cpu_pairs_per_call(config) < CPU_PAIRS_PER_CALL  # 3 x 132 features: fewer pairs than a small student
    assert cpu_pairs_per_call(config, committee_size=4) < cpu_pairs_per_call(config) // 3
    cost = potential.compiled_cost(numbers, np.stack([positions + 0.01 * k for k in range(16)]))
    pairs = cost["structures_per_call"] * len(half_pair_list(positions, config.cutoff, None, False))
    assert cost["structures_per_call"] > 1
    assert cost["temp_bytes"] <= SCRATCH_BYTES_PER_CALL
    assert cost["temp_bytes"] <= SCRATCH_BYTES_PER_PAIR_LAYER_FEATURE * pairs * config.num_layers * config.num_features
