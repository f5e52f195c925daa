"""Few host <-> device copies per model call: a batch goes up as one buffer per dtype, the results come
back as one buffer.

On a GPU every array copied costs a fixed ~0.05-0.3 ms whatever its size. Measured on an H200
(docs/results/gpu_h200/, bench/gpu_latency.py), a 42-atom call of the bundled student spent 0.9 ms
copying its 15 input arrays up and 1.6 ms fetching its outputs array by array, against 0.6 ms of model.
So the host packs the :class:`~so3k_driver.model.forces.Batch` leaves into one flat buffer per dtype
(:func:`pack_batch`); the jitted function cuts them out again (:func:`unpack_batch`, static slices) and
returns everything it computed as one flat vector (:func:`pack_outputs`), which the host cuts into
arrays after a single copy (:func:`unpack_outputs`). On a CPU the copies are free and the packing costs
a few microseconds.

Layouts are hashable (the input layout is a static argument of the jitted function) and describe
each leaf as (group, start, shape, dtype), group being the index of its buffer.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..model.forces import Batch


class Leaf(NamedTuple):
    """Where one array lives in a packed buffer: buffer ``group``, elements [start, start + size)."""

    group: int
    start: int
    shape: tuple[int, ...]
    dtype: str  # the leaf's own dtype (booleans travel as int32)


class BatchLayout(NamedTuple):
    """One :class:`Leaf` per Batch field, in field order; buffer_dtypes: the dtype of each buffer."""

    leaves: tuple[Leaf, ...]
    buffer_dtypes: tuple[str, ...]


def _buffer_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.int32) if dtype == np.bool_ else dtype


def pack_batch(batch: Batch) -> tuple[tuple[np.ndarray, ...], BatchLayout]:
    """Host arrays of a Batch -> (one flat buffer per dtype, the layout that undoes it)."""
    groups: dict[np.dtype, int] = {}  # buffer dtype -> buffer index, in order of first use
    pieces: list[list[np.ndarray]] = []
    sizes: list[int] = []
    leaves = []
    for a in map(np.asarray, batch):
        dtype = _buffer_dtype(a.dtype)
        if dtype not in groups:
            groups[dtype] = len(groups)
            pieces.append([])
            sizes.append(0)
        group = groups[dtype]
        leaves.append(Leaf(group, sizes[group], a.shape, a.dtype.str))
        pieces[group].append(a.reshape(-1))
        sizes[group] += a.size
    buffers = tuple(np.concatenate(p).astype(d, copy=False) for d, p in zip(groups, pieces))
    return buffers, BatchLayout(tuple(leaves), tuple(d.str for d in groups))


def unpack_batch(buffers, layout: BatchLayout) -> Batch:
    """The inverse of :func:`pack_batch`, traceable (static slices of the buffers)."""
    fields = []
    for leaf in layout.leaves:
        piece = buffers[leaf.group][leaf.start:leaf.start + math.prod(leaf.shape)].reshape(leaf.shape)
        fields.append(piece != 0 if np.dtype(leaf.dtype) == np.bool_ else piece)
    return Batch(*fields)


class OutputLayout(NamedTuple):
    """The pytree structure of a call's outputs and the (shape, dtype) of each leaf, in order."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]


def pack_outputs(tree) -> tuple[jax.Array, OutputLayout]:
    """Traced outputs (floating leaves; None leaves allowed) -> one flat vector of the widest float dtype."""
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves:
        raise ValueError("pack_outputs needs at least one array")
    if not all(jnp.issubdtype(x.dtype, jnp.floating) for x in leaves):
        raise ValueError(f"pack_outputs packs floating outputs only, got dtypes {[str(x.dtype) for x in leaves]}")
    wide = jnp.result_type(*leaves)
    flat = jnp.concatenate([jnp.ravel(x).astype(wide) for x in leaves])
    return flat, OutputLayout(treedef, tuple(tuple(x.shape) for x in leaves), tuple(str(x.dtype) for x in leaves))


def unpack_outputs(flat: np.ndarray, layout: OutputLayout):
    """The inverse of :func:`pack_outputs` on the host (views into ``flat``, cast back to each leaf's dtype)."""
    sizes = [math.prod(shape) for shape in layout.shapes]
    if sum(sizes) != flat.size:
        raise ValueError(f"packed outputs hold {flat.size} numbers, the layout {sum(sizes)}")
    pieces = np.split(flat, np.cumsum(sizes)[:-1])
    leaves = [piece.reshape(shape).astype(dtype, copy=False)
              for piece, shape, dtype in zip(pieces, layout.shapes, layout.dtypes)]
    return jax.tree.unflatten(layout.treedef, leaves)
