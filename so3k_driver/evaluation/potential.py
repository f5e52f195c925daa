"""The potential API shared by the CLI, the i-PI driver, the ASE calculator and training.

``Potential.evaluate`` takes one structure or B structures of the same size and returns energies
(eV), forces (eV/Å) and, for periodic cells, stress (eV/Å^3) and virial (= -stress * volume, eV),
all from one jitted call. Pair lists are built on the host and padded to capacity buckets, so an
MD run compiles once per bucket; ``compile_count`` counts the traces.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..model.config import ModelConfig
from ..model.energy import EnergyModel
from ..model.so3krates import Graph, mask_padded_pairs
from .neighbors import CapacityKeeper, half_pair_list
from .validation import InputError, check_close_contacts, check_structures

DTYPES = {"float32": np.float32, "float64": np.float64}
PER_ATOM_EXTRAS = ("charges", "hirshfeld_ratios")
# On a CPU a call runs fastest while its per-pair arrays stay in cache (1 MB L2 per core here):
# 32 Ac-Ala3-NHMe (400 pairs each) cost 4.5 ms per structure one per call, 3.5 ms two per call,
# and 6.1-6.5 ms with 3, 4 or all 32 per call (2-core EPYC, float32). Batches are therefore split
# into calls of at most this many pairs on CPUs (half as many in float64, whose arrays are twice
# as large); accelerators get the whole batch in one call.
CPU_PAIRS_PER_CALL = 1024


@dataclasses.dataclass
class Results:
    """Outputs for B structures of N atoms. Units: eV, eV/Å, eV/Å^3, e, e·Å, seconds."""

    energy: np.ndarray  # (B,)
    forces: np.ndarray  # (B, N, 3)
    stress: np.ndarray | None = None  # (B, 3, 3), periodic only
    virial: np.ndarray | None = None  # (B, 3, 3), periodic only
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # e.g. charges (B, N), dipole (B, 3)
    wall_time: float = 0.0  # seconds for the whole evaluate() call


@dataclasses.dataclass
class _Batch:
    """Host-side, padded arrays for one jitted call."""

    arrays: dict[str, np.ndarray]
    num_structures: int


class Potential:
    """A loaded model ready to evaluate structures.

    config, params: the model (params: ``{'params': tree}`` in the authors' layout).
    dtype: 'float32' (default) or 'float64'; float64 switches JAX's x64 mode on only inside calls.
    lr_cutoff (Å, None = all pairs, gas phase only) and dispersion_damping (Å): SO3LR run-time options.
    device: None (JAX default), or e.g. 'cpu', 'gpu', 'gpu:1'.
    pairs_per_call: split batches into jitted calls of about this many pairs (None: one call);
    'auto' = CPU_PAIRS_PER_CALL on a CPU, one call on an accelerator.
    """

    def __init__(self, config: ModelConfig, params: dict, *, dtype: str = "float32",
                 lr_cutoff: float | None = 12.0, dispersion_damping: float = 2.0,
                 device: str | None = None, pairs_per_call: int | None | str = "auto",
                 description: str = ""):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        if lr_cutoff is not None and lr_cutoff <= dispersion_damping:
            raise ValueError(f"lr_cutoff ({lr_cutoff} Å) must exceed the dispersion damping width ({dispersion_damping} Å)")
        self.config = config
        self.dtype = dtype
        self.description = description
        self.lr_cutoff = lr_cutoff if config.needs_long_range_pairs else None
        self._uses_lr_pairs = config.needs_long_range_pairs
        self._module = EnergyModel(config, lr_cutoff=self.lr_cutoff, dispersion_damping=dispersion_damping)
        self._device = _resolve_device(device)
        if pairs_per_call == "auto":
            platform = (self._device or jax.devices()[0]).platform
            bytes_per_float = np.dtype(DTYPES[dtype]).itemsize
            pairs_per_call = CPU_PAIRS_PER_CALL * 4 // bytes_per_float if platform == "cpu" else None
        self._pairs_per_call = pairs_per_call
        self._per_call: dict = {}
        self._capacities = CapacityKeeper()
        self._compile_count = 0
        np_dtype = DTYPES[dtype]
        with self._precision():
            params = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np_dtype)), params)
            self._params = jax.device_put(params, self._device) if self._device else params
        # Parameters are closed over, i.e. compiled in as constants: no per-call pytree handling of
        # ~130 arrays, and XLA folds the weight-only work (block-diagonal q/k/v, fused kernels).
        self._jitted = jax.jit(
            functools.partial(self._energy_and_derivatives, self._params),
            static_argnames=("num_structures", "with_stress"),
        )

    # ------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, spec: str, dtype: str | None = None, **options) -> "Potential":
        """Load a model spec (file.so3k, mlff:DIR, so3lr:DIR, default); dtype None = the model's own."""
        from ..io.model_files import load_model

        config, params, header = load_model(spec)
        return cls(config, params, dtype=dtype or header.get("dtype", "float32"), description=spec, **options)

    @property
    def compile_count(self) -> int:
        """How many times the model has been traced and compiled (one per shape bucket)."""
        return self._compile_count

    def pair_capacity(self, num_structures: int, num_atoms: int) -> int | None:
        """Padded short-range pair slots in use for batches of B structures of N atoms (None before use)."""
        return self._capacities.current(("pair", (num_structures, num_atoms)))

    @property
    def species(self) -> tuple[int, ...]:
        return self.config.species

    @property
    def cutoff(self) -> float:
        return self.config.cutoff

    def _precision(self):
        return jax.enable_x64(self.dtype == "float64")

    # ------------------------------------------------------------------------------------------
    def evaluate(self, numbers, positions, cell=None, pbc=None, *, total_charge=0.0,
                 unpaired_electrons=0.0, compute_stress: bool | None = None) -> Results:
        """Energies, forces (and stress/virial when periodic) for one or B same-size structures.

        numbers: (N,) or (B, N) int. positions: (N, 3) or (B, N, 3) Å. cell: None, (3, 3) or
        (B, 3, 3) Å with lattice vectors as rows. pbc: bool or (3,) bools (default: True if a cell
        is given). total_charge, unpaired_electrons: scalars or (B,) (SO3LR models only).
        """
        start = time.perf_counter()
        numbers = np.asarray(numbers)
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim == 2:
            positions = positions[None]
        if positions.ndim != 3 or positions.shape[-1] != 3:
            raise InputError(f"positions must have shape (N, 3) or (B, N, 3), got {np.shape(positions)}")
        if numbers.ndim == 1:
            if len(numbers) != positions.shape[1]:
                raise InputError(
                    f"mismatched shapes: {len(numbers)} atomic numbers but {positions.shape[1]} positions"
                )
            numbers = np.broadcast_to(numbers, positions.shape[:2])
        if not np.issubdtype(numbers.dtype, np.integer):
            raise InputError(f"atomic numbers must be integers, got dtype {numbers.dtype}")
        if pbc is None:
            pbc = cell is not None
        pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
        cells = None
        if cell is not None:
            cells = np.asarray(cell, dtype=np.float64)
            if cells.ndim == 2:
                cells = np.broadcast_to(cells, (positions.shape[0], *cells.shape))
        check_structures(numbers, positions, cells, pbc, self.config.species)
        periodic = bool(pbc.any())
        with_stress = periodic if compute_stress is None else bool(compute_stress and periodic)
        if compute_stress and not periodic:
            raise InputError("stress needs a periodic cell")
        B, N = numbers.shape
        cells = cells if periodic else None
        dtype = DTYPES[self.dtype]
        charges = np.broadcast_to(np.asarray(total_charge, dtype), (B,))
        unpaired = np.broadcast_to(np.asarray(unpaired_electrons, dtype), (B,))
        # i-PI pads a short batch by repeating its last structure (and so does our server): those
        # copies are evaluated once and their results copied, not recomputed.
        distinct = B - _trailing_copies(numbers, positions, cells, charges, unpaired)
        short = [self._structure_pairs(positions, cells, pbc, self.config.cutoff, b, check=True)
                 for b in range(distinct)]
        long = None
        if self._uses_lr_pairs:
            if self.lr_cutoff is None and cells is not None:
                raise InputError("SO3LR under periodic boundaries needs a finite long-range cutoff (lr_cutoff)")
            long = [self._structure_pairs(positions, cells, pbc, self.lr_cutoff, b) for b in range(distinct)]
        # The call size depends on the full B, not on how many are distinct, so the compiled shape
        # does not change when i-PI's batches are more or less full.
        per_call = self._structures_per_call(B, N, max(len(p[0]) for p in short))
        parts = []
        for first in range(0, distinct, per_call):
            # the last call is padded to the same size by repeating its last structure: one compiled shape
            index = np.minimum(np.arange(first, first + per_call), distinct - 1)
            batch = self._pack(index, numbers, positions, charges, unpaired, short, long)
            parts.append(_take(self._call(batch, with_stress, N), min(per_call, distinct - first)))
        energy, forces, strain_derivative, extras = _repeat_last(_concatenate(parts), B)
        results = Results(energy=energy, forces=forces, extras=extras)
        if with_stress:
            derivative = 0.5 * (strain_derivative + np.swapaxes(strain_derivative, 1, 2))
            volume = np.abs(np.linalg.det(cells))
            results.virial = -derivative
            results.stress = derivative / volume[:, None, None]
        results.wall_time = time.perf_counter() - start
        return results

    def evaluate_atoms(self, atoms, **kwargs) -> Results:
        """Evaluate one ``ase.Atoms`` (cell and pbc taken from it)."""
        cell = np.asarray(atoms.cell.array) if atoms.pbc.any() else None
        return self.evaluate(atoms.numbers, atoms.positions, cell, atoms.pbc if atoms.pbc.any() else False, **kwargs)

    # ------------------------------------------------------------------------------------------
    def _structure_pairs(self, positions, cells, pbc, cutoff, b, check=False):
        """Half pair list (first, second, shifts) of structure b; cutoff None = all pairs."""
        N = positions.shape[1]
        if cutoff is None:  # long-range terms without a cutoff (gas phase)
            first, second = np.triu_indices(N, k=1)
            return first, second, np.zeros((len(first), 3))
        pairs = half_pair_list(positions[b], cutoff, None if cells is None else cells[b], pbc)
        if check:
            distances = np.linalg.norm(pairs.displacements(positions[b]), axis=-1)
            check_close_contacts(b, pairs.first, pairs.second, distances)
        return pairs.first, pairs.second, pairs.shifts

    def _structures_per_call(self, num_structures: int, num_atoms: int, pairs_per_structure: int) -> int:
        """How many structures go into one jitted call: all of them, unless a pair budget is set.

        The choice is remembered per (B, N), so an MD run keeps one compiled batch shape."""
        if self._pairs_per_call is None:
            return num_structures
        key = (num_structures, num_atoms)
        if key not in self._per_call:
            self._per_call[key] = max(1, min(num_structures, self._pairs_per_call // max(1, pairs_per_structure)))
        return self._per_call[key]

    def _pair_arrays(self, lists, index, num_atoms, prefix):
        """Concatenate the half lists of structures ``index`` with atom offsets; pad to a capacity bucket."""
        firsts, seconds, shifts, owners = [], [], [], []
        for slot, b in enumerate(index):
            first, second, shift = lists[b]
            firsts.append(first + slot * num_atoms)
            seconds.append(second + slot * num_atoms)
            shifts.append(shift)
            owners.append(np.full(len(first), slot))
        count = sum(len(f) for f in firsts)
        capacity = self._capacities.capacity((prefix, (len(index), num_atoms)), count)
        padding = capacity - count
        return {
            f"{prefix}_first": np.concatenate(firsts + [np.zeros(padding, np.int64)]).astype(np.int32),
            f"{prefix}_second": np.concatenate(seconds + [np.zeros(padding, np.int64)]).astype(np.int32),
            f"{prefix}_shifts": np.concatenate(shifts + [np.zeros((padding, 3))]).astype(DTYPES[self.dtype]),
            f"{prefix}_structure": np.concatenate(owners + [np.zeros(padding, np.int64)]).astype(np.int32),
            f"{prefix}_mask": np.arange(capacity) < count,
        }

    def _pack(self, index, numbers, positions, charges, unpaired, short, long) -> _Batch:
        """Host arrays for one jitted call over structures ``index``."""
        B, N = len(index), numbers.shape[1]
        dtype = DTYPES[self.dtype]
        arrays: dict[str, Any] = {
            "numbers": numbers[index].reshape(-1).astype(np.int32),
            "atom_structure": np.repeat(np.arange(B, dtype=np.int32), N),
            "positions": positions[index].reshape(-1, 3).astype(dtype),
            "total_charge": charges[index].copy(),
            "unpaired": unpaired[index].copy(),
        }
        arrays.update(self._pair_arrays(short, index, N, "pair"))
        if long is not None:
            arrays.update(self._pair_arrays(long, index, N, "lr"))
        else:
            empty = np.zeros(0, np.int32)
            arrays.update(lr_first=empty, lr_second=empty, lr_shifts=np.zeros((0, 3), dtype),
                          lr_structure=empty, lr_mask=np.zeros(0, bool))
        return _Batch(arrays, B)

    def _call(self, batch: _Batch, with_stress: bool, num_atoms: int):
        """Run the jitted model; returns host arrays (energy, forces, strain derivative, extras)."""
        with self._precision():
            energy, forces, strain_derivative, extras = self._jitted(
                **batch.arrays, num_structures=batch.num_structures, with_stress=with_stress
            )
            B = batch.num_structures
            extras = {k: np.asarray(v, dtype=np.float64) for k, v in extras.items()}
            for key in PER_ATOM_EXTRAS:
                if key in extras:
                    extras[key] = extras[key].reshape(B, num_atoms)
            return (
                np.asarray(energy, dtype=np.float64),
                np.asarray(forces, dtype=np.float64).reshape(B, num_atoms, 3),
                None if strain_derivative is None else np.asarray(strain_derivative, dtype=np.float64),
                extras,
            )

    def _energy_and_derivatives(self, params, *, numbers, atom_structure, positions, total_charge, unpaired,
                                pair_first, pair_second, pair_shifts, pair_structure, pair_mask,
                                lr_first, lr_second, lr_shifts, lr_structure, lr_mask,
                                num_structures: int, with_stress: bool):
        self._compile_count += 1  # runs only while tracing, i.e. once per compiled shape
        largest_cutoff = max(self.config.cutoff, self.lr_cutoff or 0.0)

        def displacements(pos, first, second, shifts, owner, mask, deform):
            d = pos[second] - pos[first] + shifts
            if deform is not None:
                d = jnp.einsum("pi,pij->pj", d, deform[owner])
            return mask_padded_pairs(d, mask, largest_cutoff)

        def total_energy(pos, strain):
            deform = None
            if with_stress:
                deform = jnp.eye(3, dtype=pos.dtype) + strain
            graph = Graph(
                numbers=numbers,
                atom_structure=atom_structure,
                positions=pos if deform is None else jnp.einsum("ai,aij->aj", pos, deform[atom_structure]),
                displacements=displacements(pos, pair_first, pair_second, pair_shifts, pair_structure, pair_mask, deform),
                pair_first=pair_first,
                pair_second=pair_second,
                pair_mask=pair_mask,
                lr_displacements=displacements(pos, lr_first, lr_second, lr_shifts, lr_structure, lr_mask, deform),
                lr_first=lr_first,
                lr_second=lr_second,
                lr_mask=lr_mask,
                total_charge=total_charge,
                unpaired_electrons=unpaired,
            )
            outputs = self._module.apply(params, graph, num_structures)
            energies = jax.ops.segment_sum(outputs["atom_energies"], atom_structure, num_structures)
            extras = {k: v for k, v in outputs.items() if k != "atom_energies"}
            return jnp.sum(energies), (energies, extras)

        strain = jnp.zeros((num_structures, 3, 3), positions.dtype)
        if with_stress:
            (_, (energies, extras)), (grad_pos, grad_strain) = jax.value_and_grad(
                total_energy, argnums=(0, 1), has_aux=True
            )(positions, strain)
        else:
            (_, (energies, extras)), grad_pos = jax.value_and_grad(total_energy, has_aux=True)(positions, strain)
            grad_strain = None
        return energies, -grad_pos, grad_strain, extras


def _take(outputs, count: int):
    """The first ``count`` structures of one call's outputs (drops the padding repeats)."""
    energy, forces, strain, extras = outputs
    return (energy[:count], forces[:count], None if strain is None else strain[:count],
            {k: v[:count] for k, v in extras.items()})


def _trailing_copies(numbers, positions, cells, charges, unpaired) -> int:
    """How many structures at the end of the batch are exact copies of the one before them."""
    B = len(positions)
    copies = 0
    while copies < B - 1:
        b = B - 1 - copies
        same = (np.array_equal(positions[b], positions[b - 1]) and np.array_equal(numbers[b], numbers[b - 1])
                and charges[b] == charges[b - 1] and unpaired[b] == unpaired[b - 1]
                and (cells is None or np.array_equal(cells[b], cells[b - 1])))
        if not same:
            break
        copies += 1
    return copies


def _repeat_last(outputs, count: int):
    """Extend per-structure outputs to ``count`` structures by repeating the last one."""
    energy, forces, strain, extras = outputs
    index = np.minimum(np.arange(count), len(energy) - 1)
    return (energy[index], forces[index], None if strain is None else strain[index],
            {k: v[index] for k, v in extras.items()})


def _concatenate(parts):
    energy = np.concatenate([p[0] for p in parts])
    forces = np.concatenate([p[1] for p in parts])
    strain = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
    extras = {k: np.concatenate([p[3][k] for p in parts]) for k in parts[0][3]}
    return energy, forces, strain, extras


def _resolve_device(device: str | None):
    if device is None:
        return None
    kind, _, index = device.partition(":")
    try:
        devices = jax.devices(kind)
    except RuntimeError as error:
        raise ValueError(f"no JAX device of kind {kind!r} available ({error})") from None
    i = int(index or 0)
    if i >= len(devices):
        raise ValueError(f"device {device!r} requested but only {len(devices)} {kind} device(s) present")
    return devices[i]
