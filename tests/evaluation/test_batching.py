"""Call sizing of the host-side Batcher: pair budgets, even filling, one shape per (B, N)."""

import numpy as np
import pytest

from so3k_driver.evaluation.batching import Batcher


@pytest.mark.parametrize("structures, room, expected", [
    (16, 9, 8),   # 2 calls of 8, not 9 + 7 padded to 9 + 9
    (8, 7, 4),    # 2 calls of 4
    (5, 4, 3),    # 2 calls: 3 + 2 (padded to 3)
    (8, 8, 8),    # fits in one call
    (4, 100, 4),  # never more than the batch
    (6, 2, 2),    # 3 calls of 2
    (3, 0, 1),    # one structure over budget still gets a call of its own
])
def test_calls_are_filled_evenly_within_the_pair_budget(structures, room, expected):
    pairs_per_structure = 100
    batcher = Batcher(np.float32, pairs_per_call=max(1, room * pairs_per_structure))
    per_call = batcher.structures_per_call(structures, 42, pairs_per_structure)
    assert per_call == expected
    calls = -(-structures // per_call)
    assert per_call * calls - structures < calls  # padding below one slot per call
    assert per_call * pairs_per_structure <= max(room, 1) * pairs_per_structure


def test_devices_each_get_a_share_without_a_pair_budget():
    assert Batcher(np.float32, pairs_per_call=None, min_calls=2).structures_per_call(5, 42, 100) == 3
    assert Batcher(np.float32, pairs_per_call=None).structures_per_call(5, 42, 100) == 5


def test_the_choice_is_kept_per_batch_shape_so_md_keeps_one_compiled_shape():
    batcher = Batcher(np.float32, pairs_per_call=1000)
    assert batcher.structures_per_call(8, 42, 250) == 4
    assert batcher.structures_per_call(8, 42, 600) == 4  # more pairs later in the run: same shape
    assert batcher.structures_per_call(8, 50, 600) == 1  # another structure size: its own choice


def test_each_call_position_is_padded_to_its_own_structures_pairs():
    """An MD batch whose replicas differ in pair count (an extended and a compact chain): each call keeps
    the capacity its own replica needs, through the run, instead of every call taking the largest."""
    from so3k_driver.evaluation.batching import StructureBatch
    from so3k_driver.evaluation.neighbors import PairList, bucket_capacity

    def pairs(count):
        first = np.zeros(count, np.int32)
        return PairList(first, first + 1, np.zeros((count, 3), np.float32))

    batcher = Batcher(np.float32, pairs_per_call=1000)  # one 900-pair structure per call
    for step, (loose, compact) in enumerate([(600, 900), (610, 880), (595, 905), (612, 899)]):
        structures = StructureBatch(np.ones((2, 10), int), np.zeros((2, 10, 3)), np.zeros(2), np.zeros(2),
                                    short=[pairs(loose), pairs(compact)], long=None)
        (first, _), (second, _) = batcher.calls(structures)
        assert int(first.pair_mask.sum()) == loose and int(second.pair_mask.sum()) == compact
        assert len(first.pair_mask) <= bucket_capacity(int(612 * 1.08) + 1) < compact <= len(second.pair_mask), step


def test_host_outputs_are_writable_copies_of_read_only_float64_device_arrays():
    """On a CPU the fetched outputs are read-only views of JAX's buffers; results a caller may edit are its own."""
    def frozen(array):
        array = np.asarray(array, dtype=np.float64)
        array.flags.writeable = False
        return array

    energies, forces = frozen([1.0, 2.0]), frozen(np.arange(12.0))
    charges = frozen(np.arange(4.0))
    outputs = Batcher.host_outputs(energies, forces, None, {"charges": charges}, count=2, num_atoms=2)
    for array, source in ((outputs.energy, energies), (outputs.forces, forces), (outputs.extras["charges"], charges)):
        assert array.flags.writeable and not np.shares_memory(array, source)
    assert outputs.forces.shape == (2, 2, 3) and outputs.extras["charges"].shape == (2, 2)
