"""The potential API shared by the CLI, the i-PI driver, the ASE calculator and training tests.

``Potential.evaluate`` takes one structure or B structures of the same size and returns energies
(eV), forces (eV/Å) and, for periodic cells, stress (eV/Å^3) and virial (= -stress * volume, eV).
It validates the input, builds the pair lists, hands them to the host batcher (``batching``) and
calls the jitted :func:`~so3k_driver.model.forces.energy_and_derivatives`, the same function
training differentiates. Pair lists are padded to capacity buckets, so an MD run compiles once per
bucket; ``compile_count`` counts the traces.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import InputError
from ..model.config import ModelConfig
from ..model.energy import EnergyModel
from ..model.forces import committee_energy_and_derivatives, energy_and_derivatives
from . import xla_options
from .host_memory import keep_large_buffers, warn_if_beyond_thread_heap
from .batching import Batcher, Outputs, StructureBatch, capacity_key, repeat_last, trailing_copies
from .neighbors import PairList, all_pairs, half_pair_list
from .transfer import OutputLayout, pack_batch, pack_outputs, unpack_batch, unpack_outputs
from .validation import check_close_contacts, check_structures

DTYPES = {"float32": np.float32, "float64": np.float64}
# On a CPU a call runs fastest while its per-pair arrays stay in cache: with the bundled student (float32,
# 2-core EPYC, 2026-12-02) 8 Ac-Ala3-NHMe in one call (3400 pairs) cost 1.2 ms per structure, 12 or 16
# in one call 2.3-4.0 ms. Batches are therefore split into calls of at most this many short-range pairs
# (half as many in float64, whose arrays are twice as large), filled evenly (Batcher.structures_per_call);
# accelerators get the whole batch in one call. Budget 4096 against the earlier 1024 (Potential.evaluate,
# interleaved rounds, docs/performance.md): 4 / 8 / 16 x Ac-Ala3-NHMe 0.77-0.81 x the time; 8 x extended
# Ac-Ala15-NHMe (2 per call instead of 1) 0.84 and 0.97 x in two runs; the helix (2539 pairs) is unchanged.
CPU_PAIRS_PER_CALL = 4096
# A user's budget (pairs per call, float32) in place of the one below, for CPUs whose caches differ from the
# 2-core EPYC these were measured on (bench/bench_call_budget.py compares budgets on a given machine).
CPU_PAIRS_ENVIRONMENT = "SO3K_CPU_PAIRS_PER_CALL"
# A call's scratch memory (XLA's temp buffer, float32) grows as pairs x layers x features: 81-93 bytes
# for v6, v10 and SO3LR on 8 x 162 atoms (Potential.compiled_cost). Kept under 48 MiB per call, so that it
# fits the 64 MiB heap of a glibc thread arena and is reused between calls (host_memory.py): SO3LR in
# calls of two Ac-Ala15-NHMe (94 MiB) page-faults through fresh memory every call, in calls of one (47.7
# MiB) it does not: 254 -> 137 ms per 8 (docs/performance.md, "CPU scratch is reused").
SCRATCH_BYTES_PER_PAIR_LAYER_FEATURE = 96
SCRATCH_BYTES_PER_CALL = 48 << 20
# Gas-phase structures up to this many atoms get SO3LR's long-range terms as dense (S, N, N) arrays
# instead of a pair list (model.so3lr.DensePairs); measured in docs/performance.md.
DENSE_LONG_RANGE_MAX_ATOMS = 1024


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
class _Plan:
    """A validated batch cut into jitted calls: (inputs, real structures) each; see ``Potential._plan``."""
    calls: list
    with_stress: bool
    dense: bool
    cells: np.ndarray | None
    num_structures: int
    num_atoms: int


class Potential:
    """A loaded model ready to evaluate structures.

    config, params: the model (params: ``{'params': tree}`` in the authors' layout).
    dtype: 'float32' (default) or 'float64'; float64 switches JAX's x64 mode on only inside calls.
    lr_cutoff (Å, None = all pairs, gas phase only) and dispersion_damping (Å): SO3LR run-time options.
    device: None (JAX default), one device ('cpu', 'gpu', 'gpu:1'), or several that share each batch
    ('gpu:all', 'gpu:0,1'): the batch is split into one call per device, dispatched together.
    pairs_per_call: split batches into jitted calls of about this many pairs (None: one call);
    'auto' = CPU_PAIRS_PER_CALL on a CPU, one call on an accelerator.
    committee_size: M for a committee (every parameter leaf has a leading axis M): results are the
    committee mean, with the members and their spread in ``Results.extras`` (see ``evaluate``).
    dense_long_range: SO3LR's long-range terms over dense per-structure arrays (True) or a pair list
    (False); 'auto' = dense for gas-phase structures of up to DENSE_LONG_RANGE_MAX_ATOMS atoms. The
    numbers are the same either way, up to summation order.
    pack_transfers: send each call's inputs as one buffer per dtype and fetch its results as one vector
    (transfer.py); 'auto' = on accelerators, where every copied array costs a fixed ~0.1 ms. On a CPU
    the copies are free and the packed call measured up to 1.07 x slower (1 x 162 atoms), so it is off.
    """

    def __init__(self, config: ModelConfig, params: dict, *, dtype: str = "float32",
                 lr_cutoff: float | None = 12.0, dispersion_damping: float = 2.0,
                 device: str | None = None, pairs_per_call: int | None | str = "auto",
                 description: str = "", committee_size: int | None = None,
                 dense_long_range: bool | str = "auto", pack_transfers: bool | str = "auto"):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        if lr_cutoff is not None and lr_cutoff <= dispersion_damping:
            raise ValueError(f"lr_cutoff ({lr_cutoff} Å) must exceed the dispersion damping width ({dispersion_damping} Å)")
        if committee_size is not None and committee_size < 2:
            raise ValueError(f"committee_size must be >= 2 (or None for a single model), got {committee_size}")
        self.config = config
        self.committee_size = committee_size
        self.dtype = dtype
        self.description = description
        self.lr_cutoff = lr_cutoff if config.needs_long_range_pairs else None
        if dense_long_range not in (True, False, "auto"):
            raise ValueError(f"dense_long_range must be True, False or 'auto', got {dense_long_range!r}")
        self._dense_long_range = dense_long_range
        self.model = EnergyModel(config, lr_cutoff=self.lr_cutoff, dispersion_damping=dispersion_damping)
        self._dense_model = self.model.clone(dense_long_range=True)
        self._devices = _resolve_devices(device)
        platform = self._platform = (self._devices[0] or jax.devices()[0]).platform
        if platform == "cpu":
            keep_large_buffers()  # run time, not import: freed scratch is reused, not faulted in anew
        if pack_transfers not in (True, False, "auto"):
            raise ValueError(f"pack_transfers must be True, False or 'auto', got {pack_transfers!r}")
        self._pack_transfers = platform != "cpu" if pack_transfers == "auto" else pack_transfers
        bytes_per_float = np.dtype(DTYPES[dtype]).itemsize
        # one structure's scratch cannot be split between calls: a CPU process without huge pages is told
        # when it outgrows a thread heap (host_memory.warn_if_beyond_thread_heap)
        self._scratch_per_pair = (scratch_bytes_per_pair(config, committee_size) * bytes_per_float / 4
                                  if platform == "cpu" else None)
        if pairs_per_call == "auto":
            pairs_per_call = (cpu_pairs_per_call(config, committee_size) * 4 // bytes_per_float
                              if platform == "cpu" else None)
        self._batcher = Batcher(DTYPES[dtype], pairs_per_call, min_calls=len(self._devices))
        self._compile_count = 0
        self._output_layouts: dict = {}
        derivatives = committee_energy_and_derivatives if committee_size else energy_and_derivatives

        # Packed (layout given): in, the batch as one buffer per dtype; out, every result in one vector.
        def traced(params, buffers, layout, num_structures, with_stress, dense_long_range):
            self._compile_count += 1  # runs only while tracing, i.e. once per compiled shape and device
            batch = buffers if layout is None else unpack_batch(buffers, layout)
            outputs = derivatives(self.model_for(dense_long_range), params, batch, num_structures, with_stress)
            if layout is None:
                return outputs
            flat, output_layout = pack_outputs(outputs)
            self._output_layouts[(layout, num_structures, with_stress, dense_long_range)] = output_layout
            return flat

        # Parameters are closed over, i.e. compiled in as constants: no per-call pytree handling of
        # ~130 arrays, and XLA folds the weight-only work (block-diagonal q/k/v, fused kernels).
        # Several devices: one copy of the parameters and one jitted function on each.
        self._jitted = []
        with self._precision():
            params = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, DTYPES[dtype])), params)
            for target in self._devices:
                on_device = jax.device_put(params, target) if target is not None else params
                self._jitted.append(xla_options.jit(functools.partial(traced, on_device),
                                                    target.platform if target is not None else None,
                                                    static_argnames=("layout", "num_structures", "with_stress",
                                                                     "dense_long_range")))
        self._params = params

    # ------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, spec: str, dtype: str | None = None, **options) -> "Potential":
        """Load a model spec (file.so3k, mlff:DIR, so3lr:DIR, default); dtype None = the model's own."""
        from ..io.model_files import load_model

        config, params, header = load_model(spec)
        return cls(config, params, dtype=dtype or header.get("dtype", "float32"), description=spec,
                   committee_size=header.get("committee_size"), **options)

    @property
    def compile_count(self) -> int:
        """How many times the model has been traced and compiled (one per shape bucket)."""
        return self._compile_count

    def pair_capacity(self, num_structures: int, num_atoms: int, position: int = 0) -> int | None:
        """Padded short-range pair slots in use for calls of ``num_structures`` structures of ``num_atoms``
        atoms that start at structure ``position`` of their batch (None before use)."""
        return self._batcher.capacities.current(capacity_key("pair", num_structures, num_atoms, position))

    @property
    def species(self) -> tuple[int, ...]:
        return self.config.species

    @property
    def cutoff(self) -> float:
        return self.config.cutoff

    def uses_dense_long_range(self, periodic: bool, num_atoms: int) -> bool:
        """Whether batches of ``num_atoms``-atom structures get the long-range terms as dense arrays."""
        if not self.config.needs_long_range_pairs or periodic:
            return False
        if self._dense_long_range == "auto":
            return num_atoms <= DENSE_LONG_RANGE_MAX_ATOMS
        return bool(self._dense_long_range)

    def model_for(self, dense_long_range: bool) -> EnergyModel:
        """The energy model whose long-range pairs are dense arrays (True) or the batch's pair list."""
        return self._dense_model if dense_long_range else self.model

    def _precision(self):
        return jax.enable_x64(self.dtype == "float64")

    # ------------------------------------------------------------------------------------------
    def evaluate(self, numbers, positions, cell=None, pbc=None, *, total_charge=0.0,
                 unpaired_electrons=0.0, compute_stress: bool | None = None, pad_to: int | None = None) -> Results:
        """Energies, forces (and stress/virial when periodic) for one or B same-size structures.

        numbers: (N,) or (B, N) int. positions: (N, 3) or (B, N, 3) Å. cell: None, (3, 3) or
        (B, 3, 3) Å with lattice vectors as rows. pbc: bool or (3,) bools (default: True if a cell
        is given). total_charge, unpaired_electrons: scalars or (B,) (SO3LR models only).
        pad_to: size the jitted calls as for this many structures (callers whose batches are
        sometimes short keep one compiled shape; nothing is computed for the missing ones).

        A committee returns its mean, and in ``extras``: committee_energies (B, M) eV,
        committee_forces (B, N, M, 3) eV/Å, energy_uncertainty (B,) eV (sample standard deviation over
        the members, as i-PI's committee), force_uncertainty (B, N) eV/Å (per atom, sqrt of the summed
        sample variance of the three components) and, when periodic, committee_virials (B, M, 3, 3) eV.
        """
        start = time.perf_counter()
        plan = self._plan(numbers, positions, cell, pbc, total_charge, unpaired_electrons, compute_stress, pad_to)
        D = len(self._devices)
        parts = []
        with self._precision():
            # Calls go out in rounds of one per device, each round fetched before the next is sent:
            # several devices run together, while on one CPU a call keeps the cores (and their
            # caches) to itself (two calls at once measured 6-10 % slower for 32 x 42 atoms).
            for first in range(0, len(plan.calls), D):
                round_ = [(self._dispatch(k, batch, plan.with_stress, plan.dense), count)
                          for k, (batch, count) in enumerate(plan.calls[first:first + D], start=first)]
                parts += [self._batcher.host_outputs(*pending.fetch(), count=count, num_atoms=plan.num_atoms)
                          for pending, count in round_]
        outputs = repeat_last(Outputs.concatenate(parts), plan.num_structures)
        results = Results(energy=outputs.energy, forces=outputs.forces, extras=outputs.extras)
        if plan.with_stress:
            derivative = _symmetric(outputs.strain_derivative)
            volume = np.abs(np.linalg.det(plan.cells))
            results.virial = -derivative
            results.stress = derivative / volume[:, None, None]
        if self.committee_size:
            _committee_spread(results.extras)
        results.wall_time = time.perf_counter() - start
        return results

    def _plan(self, numbers, positions, cell, pbc, total_charge, unpaired_electrons, compute_stress, pad_to) -> "_Plan":
        """Validate a batch, build its pair lists and cut it into the jitted calls ``evaluate`` makes."""
        numbers, positions, cells, pbc = normalise_structures(numbers, positions, cell, pbc)
        check_structures(numbers, positions, cells, pbc, self.config.species)
        periodic = bool(pbc.any())
        with_stress = periodic if compute_stress is None else bool(compute_stress and periodic)
        if compute_stress and not periodic:
            raise InputError("stress needs a periodic cell")
        if self.lr_cutoff is None and self.config.needs_long_range_pairs and periodic:
            raise InputError("SO3LR under periodic boundaries needs a finite long-range cutoff (lr_cutoff)")
        B, N = numbers.shape
        dense = self.uses_dense_long_range(periodic, N)
        cells = cells if periodic else None
        dtype = DTYPES[self.dtype]
        charges = np.broadcast_to(np.asarray(total_charge, dtype), (B,))
        unpaired = np.broadcast_to(np.asarray(unpaired_electrons, dtype), (B,))
        # i-PI pads a short batch by repeating its last structure: those copies are evaluated once.
        distinct = B - trailing_copies(numbers, positions, cells, charges, unpaired)
        structures = StructureBatch(
            numbers[:distinct], positions[:distinct], charges[:distinct], unpaired[:distinct],
            short=[self._pairs(positions[b], cells, pbc, b, self.config.cutoff, check=True) for b in range(distinct)],
            long=([self._pairs(positions[b], cells, pbc, b, self.lr_cutoff) for b in range(distinct)]
                  if self.config.needs_long_range_pairs and not dense else None),
        )
        # Calls are sized for the full B (or pad_to), not for how many are distinct, so the
        # compiled shape does not change when i-PI's batches are more or less full.
        calls = list(self._batcher.calls(structures, pad_to=max(B, pad_to or 0)))
        if self._scratch_per_pair is not None:
            warn_if_beyond_thread_heap(max(len(p) for p in structures.short) * self._scratch_per_pair)
        return _Plan(calls, with_stress, dense, cells, B, N)

    def compiled_cost(self, numbers, positions, cell=None, pbc=None) -> dict:
        """XLA's own account of the jitted calls that ``evaluate`` would make for this batch.

        Returns calls (how many), structures_per_call, and per call: flops and bytes_accessed (XLA's
        cost analysis; None where the backend gives none) and temp_bytes (its scratch memory: on a CPU,
        a call whose scratch outgrows the caches slows down more than its flops say). Compiles if needed.
        """
        plan = self._plan(numbers, positions, cell, pbc, 0.0, 0.0, None, None)
        batch, _ = plan.calls[0]
        compiled = self.lower(batch, plan.with_stress, plan.dense).compile()
        cost = compiled.cost_analysis()
        cost = (cost[0] if isinstance(cost, (list, tuple)) else cost) or {}
        memory = compiled.memory_analysis()
        return {"calls": len(plan.calls), "structures_per_call": len(batch.total_charge),
                "flops": cost.get("flops"), "bytes_accessed": cost.get("bytes accessed"),
                "temp_bytes": getattr(memory, "temp_size_in_bytes", None)}

    def evaluate_atoms(self, atoms, **kwargs) -> Results:
        """Evaluate one ``ase.Atoms`` (cell and pbc taken from it)."""
        cell = np.asarray(atoms.cell.array) if atoms.pbc.any() else None
        return self.evaluate(atoms.numbers, atoms.positions, cell, atoms.pbc if atoms.pbc.any() else False, **kwargs)

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _pairs(positions, cells, pbc, b: int, cutoff: float | None, check: bool = False) -> PairList:
        """Half pair list of structure b (positions (N, 3) Å); cutoff None = all pairs (gas phase)."""
        if cutoff is None:
            return all_pairs(len(positions))
        pairs = half_pair_list(positions, cutoff, None if cells is None else cells[b], pbc)
        if check:
            distances = np.linalg.norm(pairs.displacements(positions), axis=-1)
            check_close_contacts(b, pairs.first, pairs.second, distances)
        return pairs

    @property
    def params(self) -> dict:
        """The parameters in the evaluation dtype (host-side JAX arrays; committees stacked along axis 0)."""
        return self._params

    @property
    def devices(self) -> list:
        """The JAX devices a batch is spread over (``[None]``: JAX's default device)."""
        return list(self._devices)

    def _dispatch(self, index: int, batch, with_stress: bool, dense_long_range: bool) -> "PendingOutputs":
        """Start the jitted model on call ``index`` of a batch (host arrays; device ``index mod D``)."""
        slot = index % len(self._devices)
        buffers, layout = self.call_inputs(batch)
        if self._devices[slot] is not None:  # else jit copies the numpy buffers itself, in its C++ fast path
            buffers = jax.device_put(buffers, self._devices[slot])
        num_structures = len(batch.total_charge)
        outputs = self._jitted[slot](buffers, layout=layout, num_structures=num_structures, with_stress=with_stress,
                                     dense_long_range=dense_long_range)
        if layout is None:
            return PendingOutputs(outputs, None, on_cpu=self._platform == "cpu")
        return PendingOutputs(outputs, self._output_layouts[(layout, num_structures, with_stress, dense_long_range)])

    def call_inputs(self, batch) -> tuple:
        """(what the jitted model is given, its layout): the packed buffers and their BatchLayout, or the
        Batch itself and None when transfers are not packed."""
        return pack_batch(batch) if self._pack_transfers else (batch, None)

    def lower(self, batch, with_stress: bool, dense_long_range: bool):
        """The jitted model lowered for one call's host batch (``.compile()`` it for XLA's cost and HLO)."""
        buffers, layout = self.call_inputs(batch)
        with self._precision():
            return self._jitted[0].lower(buffers, layout=layout, num_structures=len(batch.total_charge),
                                         with_stress=with_stress, dense_long_range=dense_long_range)


@dataclasses.dataclass
class PendingOutputs:
    """One call's results, still on its device until :meth:`fetch`: one packed vector with its
    ``layout``, or (layout None, unpacked calls) the model's Derivatives as they came."""

    outputs: jax.Array | tuple
    layout: OutputLayout | None
    on_cpu: bool = False

    def fetch(self):
        """(energies, forces, strain_derivative or None, extras) as host arrays."""
        if self.layout is not None:
            return tuple(unpack_outputs(np.asarray(self.outputs), self.layout))
        if self.on_cpu:
            # Already in host memory: one np.asarray per array. jax.device_get first starts an asynchronous
            # copy of each, which on a CPU only costs: 0.17 against 0.45 ms for SO3LR's 5 outputs at 42 atoms.
            return tuple(jax.tree.map(np.asarray, self.outputs))
        return tuple(jax.device_get(self.outputs))  # accelerators: all copies start before the first wait


def _symmetric(matrices: np.ndarray) -> np.ndarray:
    return 0.5 * (matrices + np.swapaxes(matrices, -1, -2))


def _committee_spread(extras: dict) -> None:
    """Add the members' spread and virials to a committee's extras (in place); see ``evaluate``."""
    # sample variances (ddof = 1), the convention of i-PI's <ffcommittee> uncertainty
    extras["energy_uncertainty"] = extras["committee_energies"].std(axis=1, ddof=1)
    extras["force_uncertainty"] = np.sqrt(extras["committee_forces"].var(axis=2, ddof=1).sum(axis=-1))
    strain = extras.pop("committee_strain_derivatives", None)
    if strain is not None:
        extras["committee_virials"] = -_symmetric(strain)


def scratch_bytes_per_pair(config: ModelConfig, committee_size: int | None = None) -> int:
    """About how much scratch (bytes, float32) one short-range pair costs a call: an upper estimate."""
    return SCRATCH_BYTES_PER_PAIR_LAYER_FEATURE * config.num_layers * config.num_features * (committee_size or 1)


def cpu_pairs_per_call(config: ModelConfig, committee_size: int | None = None) -> int:
    """The float32 pair budget of one call on a CPU: $SO3K_CPU_PAIRS_PER_CALL when set, otherwise
    CPU_PAIRS_PER_CALL or fewer, so that the call's scratch stays under SCRATCH_BYTES_PER_CALL."""
    value = os.environ.get(CPU_PAIRS_ENVIRONMENT, "").strip()
    if not value:
        return max(1, min(CPU_PAIRS_PER_CALL, SCRATCH_BYTES_PER_CALL // scratch_bytes_per_pair(config, committee_size)))
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"{CPU_PAIRS_ENVIRONMENT} must be a positive whole number of pairs, got {value!r}")
    return int(value)


def normalise_structures(numbers, positions, cell, pbc):
    """Broadcast one structure or a batch to numbers (B, N), positions (B, N, 3) Å, cells (B, 3, 3) or
    None, pbc (3,) bool (default: periodic when a cell is given); shape errors are InputErrors."""
    numbers = np.asarray(numbers)
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim == 2:
        positions = positions[None]
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise InputError(f"positions must have shape (N, 3) or (B, N, 3), got {np.shape(positions)}")
    if numbers.ndim == 1:
        if len(numbers) != positions.shape[1]:
            raise InputError(f"mismatched shapes: {len(numbers)} atomic numbers but {positions.shape[1]} positions")
        numbers = np.broadcast_to(numbers, positions.shape[:2])
    if not np.issubdtype(numbers.dtype, np.integer):
        raise InputError(f"atomic numbers must be integers, got dtype {numbers.dtype}")
    pbc = np.broadcast_to(np.asarray(cell is not None if pbc is None else pbc, dtype=bool), (3,))
    cells = None
    if cell is not None:
        cells = np.asarray(cell, dtype=np.float64)
        if cells.ndim == 2:
            cells = np.broadcast_to(cells, (positions.shape[0], *cells.shape))
    return numbers, positions, cells, pbc


def _resolve_devices(device: str | None) -> list:
    """'gpu', 'gpu:1', 'gpu:0,1', 'gpu:all' (likewise cpu) -> JAX devices; None -> [None] (JAX's default)."""
    if device is None:
        return [None]
    kind, _, index = device.partition(":")
    try:
        available = jax.devices(kind)
    except RuntimeError as error:
        raise ValueError(f"no JAX device of kind {kind!r} available ({error})") from None
    if index == "all":
        return list(available)
    try:
        chosen = [int(i) for i in (index or "0").split(",")]
    except ValueError:
        raise ValueError(f"device must look like 'gpu', 'gpu:1', 'gpu:0,1' or 'gpu:all', got {device!r}") from None
    missing = [i for i in chosen if not 0 <= i < len(available)]
    if missing:
        raise ValueError(f"device {device!r} requested but only {len(available)} {kind} device(s) present")
    return [available[i] for i in chosen]
