"""Batched geometry optimisation (FIRE) of many same-size gas-phase structures: arrays in, arrays out.

Each jitted call advances S structure slots together for up to ``steps_per_call`` FIRE steps inside
one ``lax.while_loop``, with forces from the one force function of the package
(:func:`~so3k_driver.model.forces.energy_and_derivatives`) on a padded
:class:`~so3k_driver.model.forces.Batch` packed by :class:`~so3k_driver.evaluation.batching.Batcher`.

Pair lists are Verlet lists: built on the host with ``cutoff + skin`` (Å) and reused inside the call
until some atom has moved more than ``skin / 2`` from where the list was built, so no pair that can
come within the cutoff is missing (pairs beyond the cutoff contribute exactly zero). A call also
returns as soon as a slot converges, so the host can refill it with the next structure: the batch
keeps one compiled shape and stays full. Converged and empty slots are masked and do not move.

FIRE (Bitzek et al., PRL 97, 170201 (2006)), per structure s with unit masses, as in ASE's ``FIRE``:

    P = F·v;  P >= 0: v <- (1 - a) v + a |v| F/|F|, after n_min such steps dt <- min(f_inc dt, dt_max),
                      a <- f_a a;   P < 0: v <- 0, dt <- f_dec dt, a <- a_start
    v <- v + dt F;  dr = dt v, scaled down so that no atom moves more than max_step (Å);  r <- r + dr

A structure has converged when max_a |F_a| < fmax (eV/Å). Units: Å, eV, eV/Å; the FIRE time step is
in ASE's units (Å·sqrt(amu/eV) with unit masses), ASE's defaults apply.
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import UserError
from ..model.forces import energy_and_derivatives
from .batching import Batcher, StructureBatch
from .neighbors import PairList, half_pair_list
from .validation import check_structures

# Measured on the project's 2-core machine with Ac-Ala3-NHMe (docs/results/ala3_minima/README.md):
# 4 slots per call beat 2 and 8 per force evaluation, and a 0.2 Å skin (lists of 5.2 Å for a 5 Å
# cutoff, rebuilt every ~40 steps) beats both a 0.5 Å skin (more pairs in every evaluation) and
# exact lists rebuilt on the host before every step.
DEFAULT_STRUCTURES_PER_CALL = 4
DEFAULT_SKIN = 0.2


@dataclasses.dataclass(frozen=True)
class FireSettings:
    """FIRE parameters and the stopping rule. fmax in eV/Å, max_step and skin in Å, dt in ASE time units."""

    fmax: float = 0.05
    max_steps: int = 2000
    max_step: float = 0.2
    dt_start: float = 0.1
    dt_max: float = 1.0
    n_min: int = 5
    f_inc: float = 1.1
    f_dec: float = 0.5
    alpha_start: float = 0.1
    f_alpha: float = 0.99
    skin: float = DEFAULT_SKIN
    steps_per_call: int = 50
    structures_per_call: int = DEFAULT_STRUCTURES_PER_CALL

    def __post_init__(self):
        positive = {"fmax (eV/Å)": self.fmax, "max_step (Å)": self.max_step, "dt_start": self.dt_start,
                    "dt_max": self.dt_max, "max_steps": self.max_steps, "steps_per_call": self.steps_per_call,
                    "structures_per_call": self.structures_per_call}
        for name, value in positive.items():
            if not value > 0:
                raise UserError(f"{name} must be > 0, got {value!r}")
        if self.skin < 0:
            raise UserError(f"skin must be >= 0 Å, got {self.skin!r}")


@dataclasses.dataclass
class MinimisationResult:
    """B minimised structures: positions (B, N, 3) Å, energy (B,) eV, forces (B, N, 3) eV/Å,
    fmax (B,) eV/Å (largest atomic force norm), converged (B,) bool, steps (B,) FIRE steps taken;
    force_evaluations (structure-slot evaluations, padding included), calls (jitted calls),
    wall_time_s (s)."""

    positions: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    fmax: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    force_evaluations: int
    calls: int
    wall_time_s: float


class FireState(NamedTuple):
    """Per-slot optimiser state of one jitted call (S slots of N atoms): positions, velocities (S, N, 3);
    dt, alpha (S,); n_positive (S,) int: downhill steps in a row; steps (S,) int; done (S,) bool
    (converged, out of steps, or an empty slot); energy (S,) eV, forces (S, N, 3) eV/Å at positions
    (valid for done slots)."""

    positions: jax.Array
    velocities: jax.Array
    dt: jax.Array
    alpha: jax.Array
    n_positive: jax.Array
    steps: jax.Array
    done: jax.Array
    energy: jax.Array
    forces: jax.Array


def fire_update(settings: FireSettings, state: FireState, forces: jax.Array, active: jax.Array) -> FireState:
    """One FIRE step of every slot (module docstring) with ``forces`` (S, N, 3) eV/Å at
    ``state.positions``; slots where ``active`` (S,) is False are left unchanged."""
    v = state.velocities
    power = jnp.sum(forces * v, axis=(1, 2))
    force_norm = jnp.sqrt(jnp.sum(forces * forces, axis=(1, 2)))
    speed = jnp.sqrt(jnp.sum(v * v, axis=(1, 2)))
    downhill = power >= 0.0
    accelerate = downhill & (state.n_positive > settings.n_min)
    mix = state.alpha[:, None, None]
    direction = forces / jnp.maximum(force_norm, 1e-30)[:, None, None]
    mixed = (1.0 - mix) * v + mix * speed[:, None, None] * direction
    v = jnp.where(downhill[:, None, None], mixed, 0.0)
    dt = jnp.where(downhill, jnp.where(accelerate, jnp.minimum(state.dt * settings.f_inc, settings.dt_max), state.dt),
                   state.dt * settings.f_dec)
    alpha = jnp.where(downhill, jnp.where(accelerate, state.alpha * settings.f_alpha, state.alpha),
                      settings.alpha_start)
    n_positive = jnp.where(downhill, state.n_positive + 1, 0)
    v = v + dt[:, None, None] * forces
    step = dt[:, None, None] * v
    longest = jnp.max(jnp.sqrt(jnp.sum(step * step, axis=-1)), axis=1)
    step = step * jnp.minimum(1.0, settings.max_step / jnp.maximum(longest, 1e-30))[:, None, None]
    keep = ~active
    choose = lambda old, new: jnp.where(keep.reshape(keep.shape + (1,) * (new.ndim - 1)), old, new)  # noqa: E731
    return state._replace(
        positions=choose(state.positions, state.positions + step),
        velocities=choose(state.velocities, v),
        dt=choose(state.dt, dt), alpha=choose(state.alpha, alpha), n_positive=choose(state.n_positive, n_positive),
        steps=choose(state.steps, state.steps + 1),
    )


def make_fire_call(model, params, settings: FireSettings, num_structures: int, num_atoms: int) -> Callable:
    """A jitted ``call(batch, state, stop_on_convergence, fmax, max_steps) -> (state, iterations)``
    (fmax in eV/Å and max_steps are arguments, not compiled in: one compilation serves any criterion).

    Runs until every slot is done, ``settings.steps_per_call`` iterations have passed, an atom has
    moved more than skin/2 from ``batch.positions`` (the list's reference), or, when
    ``stop_on_convergence``, a slot has newly finished. Each iteration evaluates energies and forces
    at the current positions (one force call for all slots), marks slots done, and moves the others.
    """
    S, N = num_structures, num_atoms
    half_skin = 0.5 * settings.skin

    def evaluate(batch, positions):
        derivatives = energy_and_derivatives(model, params, batch._replace(positions=positions.reshape(S * N, 3)), S)
        return derivatives.energies, derivatives.forces.reshape(S, N, 3)

    def call(batch, state: FireState, stop_on_convergence, fmax_criterion, max_steps):
        reference = batch.positions.reshape(S, N, 3)

        def keep_going(carry):
            state, iterations, newly_done = carry
            moved = jnp.max(jnp.sum((state.positions - reference) ** 2, axis=-1), axis=1)
            list_valid = jnp.all(state.done | (moved <= half_skin**2))
            return ((iterations < settings.steps_per_call) & list_valid & ~jnp.all(state.done)
                    & ~(stop_on_convergence & newly_done))

        def body(carry):
            state, iterations, _ = carry
            energy, forces = evaluate(batch, state.positions)
            fmax = jnp.sqrt(jnp.max(jnp.sum(forces * forces, axis=-1), axis=1))
            finished = ~state.done & ((fmax < fmax_criterion) | (state.steps >= max_steps)
                                      | ~jnp.isfinite(energy) | ~jnp.isfinite(fmax))
            state = state._replace(
                energy=jnp.where(state.done, state.energy, energy),
                forces=jnp.where(state.done[:, None, None], state.forces, forces),
                done=state.done | finished,
            )
            state = fire_update(settings, state, forces, ~state.done)
            return state, iterations + 1, jnp.any(finished)

        state, iterations, _ = jax.lax.while_loop(keep_going, body, (state, jnp.int32(0), jnp.bool_(False)))
        return state, iterations

    return jax.jit(call)


# Compiled FIRE calls per potential, by (settings, S, N): repeated minimisations reuse them.
_FIRE_CALLS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def fire_call_for(potential, settings: FireSettings, num_structures: int, num_atoms: int) -> Callable:
    """:func:`make_fire_call` on ``potential``'s model and parameters (already cast to its dtype and
    placed on its device), made once per potential, settings and shape."""
    calls = _FIRE_CALLS.setdefault(potential, {})
    key = (dataclasses.replace(settings, fmax=1.0, max_steps=1), num_structures, num_atoms)
    if key not in calls:
        calls[key] = make_fire_call(potential.model, potential.params, settings, num_structures, num_atoms)
    return calls[key]


def _pair_list(positions: np.ndarray, cutoff: float | None) -> PairList:
    """Gas-phase half list within ``cutoff`` Å (None: all pairs)."""
    if cutoff is None:
        first, second = np.triu_indices(len(positions), k=1)
        return PairList(first, second, np.zeros((len(first), 3)))
    return half_pair_list(positions, cutoff, None, False)


def minimise(potential, numbers, positions, settings: FireSettings = FireSettings(), *,
             total_charge: float = 0.0, unpaired_electrons: float = 0.0,
             on_progress: Callable[[int, int], None] | None = None) -> MinimisationResult:
    """Minimise B gas-phase structures of the same atoms with FIRE, S = settings.structures_per_call
    at a time through ``potential``'s model (an :class:`~so3k_driver.evaluation.potential.Potential`).

    numbers: (N,) int; positions: (B, N, 3) Å; total_charge (e) and unpaired_electrons: SO3LR's
    embeddings, the same for every structure. ``on_progress(finished, converged)`` is called after
    every jitted call. Structures are fed in order into free slots; slots beyond B stay empty.
    """
    start = time.perf_counter()
    numbers = np.asarray(numbers)
    positions = np.asarray(positions, np.float64)
    if positions.ndim != 3 or positions.shape[1:] != (len(numbers), 3):
        raise UserError(f"positions must have shape (B, {len(numbers)}, 3), got {positions.shape}")
    B, N = positions.shape[:2]
    if B == 0:
        raise UserError("no structures to minimise")
    check_structures(np.broadcast_to(numbers, (B, N)), positions, None, np.zeros(3, bool), potential.species)
    S = min(settings.structures_per_call, B)
    dtype = np.float64 if potential.dtype == "float64" else np.float32
    short_cutoff = potential.cutoff + settings.skin
    long_cutoff = None if potential.lr_cutoff is None else potential.lr_cutoff + settings.skin
    needs_long = potential.config.needs_long_range_pairs
    batcher = Batcher(dtype, pairs_per_call=None)
    fire_call = fire_call_for(potential, settings, S, N)

    out = MinimisationResult(positions.copy(), np.full(B, np.nan), np.zeros_like(positions), np.full(B, np.inf),
                             np.zeros(B, bool), np.zeros(B, np.int64), 0, 0, 0.0)
    slot_frame = np.full(S, -1)
    host = {
        "positions": np.repeat(positions[:1], S, axis=0), "velocities": np.zeros((S, N, 3)),
        "dt": np.full(S, settings.dt_start), "alpha": np.full(S, settings.alpha_start),
        "n_positive": np.zeros(S, np.int32), "steps": np.zeros(S, np.int32), "done": np.ones(S, bool),
        "energy": np.zeros(S), "forces": np.zeros((S, N, 3)),
    }
    next_frame, finished = 0, 0
    with jax.enable_x64(dtype == np.float64):
        while finished < B:
            for slot in np.flatnonzero(host["done"]):
                if slot_frame[slot] >= 0:  # harvest
                    b = slot_frame[slot]
                    out.positions[b] = host["positions"][slot]
                    out.energy[b] = host["energy"][slot]
                    out.forces[b] = host["forces"][slot]
                    out.fmax[b] = np.sqrt(np.max(np.sum(host["forces"][slot] ** 2, axis=-1)))
                    out.converged[b] = bool(np.isfinite(out.energy[b]) and out.fmax[b] < settings.fmax)
                    out.steps[b] = host["steps"][slot]
                    slot_frame[slot] = -1
                    finished += 1
                if next_frame < B:  # refill
                    slot_frame[slot] = next_frame
                    host["positions"][slot] = positions[next_frame]
                    host["velocities"][slot] = 0.0
                    host["dt"][slot], host["alpha"][slot] = settings.dt_start, settings.alpha_start
                    host["n_positive"][slot] = host["steps"][slot] = 0
                    host["done"][slot] = False
                    next_frame += 1
            if finished >= B:
                break
            current = host["positions"]
            structures = StructureBatch(
                np.broadcast_to(numbers, (S, N)), current, np.full(S, total_charge), np.full(S, unpaired_electrons),
                short=[_pair_list(current[s], short_cutoff) for s in range(S)],
                long=[_pair_list(current[s], long_cutoff) for s in range(S)] if needs_long else None)
            batch = batcher.pack(structures, np.arange(S))
            state = FireState(**{k: np.asarray(v, dtype) if np.asarray(v).dtype.kind == "f" else v
                                 for k, v in host.items()})
            state, iterations = fire_call(batch, state, next_frame < B, dtype(settings.fmax),
                                          np.int32(settings.max_steps))
            host = {k: np.array(v, np.float64 if np.asarray(v).dtype.kind == "f" else np.asarray(v).dtype)
                    for k, v in state._asdict().items()}
            out.force_evaluations += int(iterations) * S
            out.calls += 1
            if on_progress is not None:
                on_progress(finished + int(np.sum(host["done"] & (slot_frame >= 0))), int(out.converged.sum()))
    out.wall_time_s = time.perf_counter() - start
    return out
