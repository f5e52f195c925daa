"""Packing a batch into one buffer per dtype and the results into one vector (evaluation/transfer.py)."""

from pathlib import Path

import ase.io
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from so3k_driver.evaluation.potential import Potential
from so3k_driver.evaluation.transfer import pack_batch, pack_outputs, unpack_batch, unpack_outputs
from so3k_driver.model.forces import Batch, Derivatives, empty_long_range_pairs


def _batch(dtype=np.float32) -> Batch:
    rng = np.random.default_rng(0)
    return Batch(numbers=np.array([1, 6, 8], np.int32), atom_structure=np.zeros(3, np.int32),
                 positions=rng.normal(size=(3, 3)).astype(dtype), pair_first=np.array([0, 0, 1, 0], np.int32),
                 pair_second=np.array([1, 2, 2, 0], np.int32), pair_shifts=rng.normal(size=(4, 3)).astype(dtype),
                 pair_structure=np.zeros(4, np.int32), pair_mask=np.array([True, True, True, False]),
                 **empty_long_range_pairs(dtype), total_charge=np.array([1.0], dtype),
                 unpaired_electrons=np.array([0.0], dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_batch_travels_as_one_buffer_per_dtype_and_comes_back_equal(dtype):
    batch = _batch(dtype)
    buffers, layout = pack_batch(batch)
    assert [b.dtype for b in buffers] == [np.dtype(np.int32), np.dtype(dtype)]  # booleans ride with the int32s
    assert sum(b.size for b in buffers) == sum(np.size(a) for a in batch)
    with jax.enable_x64(dtype == np.float64):
        inside = jax.jit(unpack_batch, static_argnums=1)(buffers, layout)
    for name, original, back in zip(Batch._fields, batch, inside):
        assert back.shape == original.shape, name
        assert np.dtype(back.dtype) == original.dtype, name
        np.testing.assert_array_equal(np.asarray(back), original, err_msg=name)


def test_the_layout_is_a_static_argument():
    _, first = pack_batch(_batch())
    _, second = pack_batch(_batch())
    assert hash(first) == hash(second) and first == second
    shorter = _batch()._replace(pair_mask=np.array([True, False, False, False]))
    assert pack_batch(shorter)[1] == first  # the same shapes: the same compiled call


def test_outputs_come_back_as_they_were_computed_none_and_extras_included():
    outputs = Derivatives(jnp.arange(2.0), jnp.ones((6, 3)), None,
                          {"charges": jnp.linspace(0, 1, 6), "dipole": jnp.full((2, 3), 0.5)})
    flat, layout = pack_outputs(outputs)
    assert flat.shape == (2 + 18 + 6 + 6,)
    back = unpack_outputs(np.asarray(flat), layout)
    assert isinstance(back, Derivatives) and back.strain_derivative is None
    np.testing.assert_array_equal(back.forces, np.ones((6, 3)))
    np.testing.assert_array_equal(back.extras["charges"], np.linspace(0, 1, 6, dtype=np.float32))
    with pytest.raises(ValueError, match="hold 31 numbers, the layout 32"):
        unpack_outputs(np.asarray(flat)[:-1], layout)


def test_integer_outputs_are_refused_with_their_dtype():
    with pytest.raises(ValueError, match="int32"):
        pack_outputs((jnp.arange(3, dtype=jnp.int32),))
    with pytest.raises(ValueError, match="int32"):  # also beside a float, which would promote it silently
        pack_outputs((jnp.ones(2), jnp.arange(3, dtype=jnp.int32)))


def test_a_packed_call_copies_two_buffers_up_and_gives_the_unpacked_numbers():
    atoms = ase.io.read(Path(__file__).resolve().parents[2] / "so3k_driver" / "data" / "Ac-Ala3-NHMe_ext.xyz")
    numbers = atoms.numbers
    positions = np.stack([atoms.positions, atoms.positions + 0.02])
    packed = Potential.load("default", pack_transfers=True)  # the accelerators' default, here on the CPU
    sent = []
    original = packed._jitted[0]

    def spy(buffers, **static):
        sent.append(buffers)
        return original(buffers, **static)

    packed._jitted[0] = spy
    result = packed.evaluate(numbers, positions)
    assert [len(buffers) for buffers in sent] == [2] * len(sent) and sent
    unpacked = Potential.load("default", pack_transfers=False).evaluate(numbers, positions)
    np.testing.assert_allclose(result.energy, unpacked.energy, rtol=0, atol=1e-5)
    np.testing.assert_allclose(result.forces, unpacked.forces, rtol=0, atol=1e-5)
    assert set(result.extras) == set(unpacked.extras)
    for key in result.extras:
        np.testing.assert_allclose(result.extras[key], unpacked.extras[key], rtol=0, atol=1e-5)


def test_pack_transfers_takes_true_false_or_auto():
    with pytest.raises(ValueError, match="got 'yes'"):
        Potential.load("default", pack_transfers="yes")
