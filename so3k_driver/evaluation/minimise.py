"""Batched geometry optimisation (FIRE or L-BFGS) of many same-size gas-phase structures: arrays in, arrays out.

Each jitted call advances S structure slots together for up to ``steps_per_call`` optimiser steps inside
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

L-BFGS (Nocedal, Math. Comp. 35, 773 (1980)), per structure s, as ASE's ``LBFGS`` (no line search):
the last ``memory`` pairs s_k = r_{k+1} - r_k (Å), y_k = F_k - F_{k+1} (eV/Å) with rho_k = 1/(y_k·s_k)
and the initial inverse Hessian H_0 give the step dr = H F by the two-loop recursion; dr is scaled down
so that no atom moves more than max_step (Å). H_0 is either 1/alpha (alpha in eV/Å², ASE's choice) or,
preconditioned, (H_Lindh + 2 eV/Å²)^-1 with Lindh's model Hessian of the structure
(:mod:`~so3k_driver.evaluation.model_hessian`), which knows stiff bonds from soft torsions and halves
the force evaluations on peptides; it is recomputed on the host between calls once an atom has moved
``PRECONDITIONER_REFRESH_A`` from where it was computed (a Cartesian model Hessian goes stale as groups
rotate). Safeguards ASE does not have: a pair with y·s <= 1e-4 |y||s| (no positive curvature along the
step) is not stored, so H stays positive definite and dr stays downhill;
when the energy rose by more than ``energy_rise`` (eV) over the last step, the structure's history is
cleared (the next step is H_0 F, preconditioned steepest descent).

A structure has converged when max_a |F_a| < fmax (eV/Å). A structure in which two atoms come closer
than ``min_distance`` (Å, default 0.5; no chemical bond is that short) is stopped and reported as
broken, not converged: a machine-learned model can have holes where the energy falls without bound
as atoms merge (the SO3LR student of docs/results/so3lr_student_v2 reached -1.4e8 eV with two atoms
0.01 Å apart from an ordinary MD frame), and a minimiser would otherwise follow it to max_steps.

Units: Å, eV, eV/Å; the FIRE time step is in ASE's units (Å·sqrt(amu/eV) with unit masses), ASE's
defaults apply.
"""

from __future__ import annotations

import dataclasses
import time
import weakref
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import UserError
from ..model.forces import energy_and_derivatives
from . import xla_options
from .batching import Batcher, StructureBatch
from .model_hessian import inverse_preconditioner
from .neighbors import PairList, all_pairs, half_pair_list
from .optimizers import DEFAULT_OPTIMIZER, OPTIMIZERS, FireSettings, LbfgsSettings
from .validation import check_structures


@dataclasses.dataclass
class MinimisationResult:
    """B minimised structures: positions (B, N, 3) Å, energy (B,) eV, forces (B, N, 3) eV/Å,
    fmax (B,) eV/Å (largest atomic force norm), converged (B,) bool, steps (B,) optimiser steps taken
    (one force evaluation each), broken (B,) bool (two atoms closer than min_distance: stopped, not
    converged); force_evaluations (structure-slot evaluations, padding included), calls (jitted
    calls), wall_time_s (s)."""

    positions: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    fmax: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    broken: np.ndarray
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


class LbfgsState(NamedTuple):
    """Per-slot L-BFGS state (S slots of N atoms, memory m): positions (S, N, 3) Å; steps, done, energy,
    forces as in :class:`FireState`; previous_positions (S, N, 3) Å, previous_forces (S, N, 3) eV/Å,
    previous_energy (S,) eV: where the last step started; has_previous (S,) bool; s_history, y_history
    (S, m, N, 3) (Å, eV/Å), oldest first; rho (S, m) 1/(y·s) in 1/eV, 0 for an empty entry (an empty
    entry then drops out of the two-loop recursion); initial_inverse_hessian H_0 in Å²/eV, (S, 1, 1)
    for 1/alpha or (S, 3N, 3N) preconditioned (atom-major)."""

    positions: jax.Array
    steps: jax.Array
    done: jax.Array
    energy: jax.Array
    forces: jax.Array
    previous_positions: jax.Array
    previous_forces: jax.Array
    previous_energy: jax.Array
    has_previous: jax.Array
    s_history: jax.Array
    y_history: jax.Array
    rho: jax.Array
    initial_inverse_hessian: jax.Array


def _keep_inactive(state, new_fields: dict, active: jax.Array):
    """``state`` with ``new_fields`` taken only for slots where ``active`` (S,) is True."""
    def choose(old, new):
        return jnp.where(active.reshape(active.shape + (1,) * (new.ndim - 1)), new, old)
    return state._replace(**{k: choose(getattr(state, k), v) for k, v in new_fields.items()})


def _limit_step(step: jax.Array, max_step: float) -> jax.Array:
    """Scale each slot's step (S, N, 3) Å so that no atom moves more than max_step Å."""
    longest = jnp.max(jnp.sqrt(jnp.sum(step * step, axis=-1)), axis=1)
    return step * jnp.minimum(1.0, max_step / jnp.maximum(longest, 1e-30))[:, None, None]


def fire_update(settings: FireSettings, state: FireState, energy: jax.Array, forces: jax.Array,
                active: jax.Array) -> FireState:
    """One FIRE step of every slot (module docstring) with ``forces`` (S, N, 3) eV/Å at
    ``state.positions`` (``energy`` is not used by FIRE); slots where ``active`` (S,) is False are left unchanged."""
    del energy
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
    step = _limit_step(dt[:, None, None] * v, settings.max_step)
    return _keep_inactive(state, {"positions": state.positions + step, "velocities": v, "dt": dt, "alpha": alpha,
                                  "n_positive": n_positive, "steps": state.steps + 1}, active)


def apply_initial_inverse_hessian(initial_inverse_hessian: jax.Array, q: jax.Array) -> jax.Array:
    """H_0 q per slot: q (S, N, 3); H_0 (S, 1, 1) (a number per slot) or (S, 3N, 3N) (atom-major)."""
    if initial_inverse_hessian.shape[-1] == 1:
        return initial_inverse_hessian * q
    S = q.shape[0]
    return jnp.einsum("sij,sj->si", initial_inverse_hessian, q.reshape(S, -1)).reshape(q.shape)


def lbfgs_direction(s_history: jax.Array, y_history: jax.Array, rho: jax.Array, forces: jax.Array,
                    initial_inverse_hessian: jax.Array) -> jax.Array:
    """H F for every slot by the two-loop recursion: histories (S, m, N, 3) oldest first, rho (S, m)
    (0 = empty entry), forces (S, N, 3) eV/Å, initial inverse Hessian H_0 (S, 1, 1) or (S, 3N, 3N) in Å²/eV
    (:func:`apply_initial_inverse_hessian`). Returns Å."""
    def dot(a, b):
        return jnp.sum(a * b, axis=(1, 2))

    items = (jnp.moveaxis(s_history, 1, 0), jnp.moveaxis(y_history, 1, 0), jnp.moveaxis(rho, 1, 0))

    def newest_first(q, item):
        s, y, r = item
        a = r * dot(s, q)
        return q - a[:, None, None] * y, a

    q, a = jax.lax.scan(newest_first, forces, items, reverse=True)

    def oldest_first(z, item):
        s, y, r, a_k = item
        b = r * dot(y, z)
        return z + (a_k - b)[:, None, None] * s, None

    z, _ = jax.lax.scan(oldest_first, apply_initial_inverse_hessian(initial_inverse_hessian, q), items + (a,))
    return z


def lbfgs_update(settings: LbfgsSettings, state: LbfgsState, energy: jax.Array, forces: jax.Array,
                 active: jax.Array) -> LbfgsState:
    """One L-BFGS step of every slot (module docstring) with ``energy`` (S,) eV and ``forces`` (S, N, 3)
    eV/Å at ``state.positions``; slots where ``active`` (S,) is False are left unchanged."""
    s = state.positions - state.previous_positions
    y = state.previous_forces - forces
    sy = jnp.sum(s * y, axis=(1, 2))
    scale = jnp.sqrt(jnp.sum(s * s, axis=(1, 2)) * jnp.sum(y * y, axis=(1, 2)))
    rose = state.has_previous & (energy > state.previous_energy + settings.energy_rise)
    store = state.has_previous & ~rose & (sy > 1e-4 * scale)
    s_history = jnp.where(rose[:, None, None, None], 0.0, state.s_history)
    y_history = jnp.where(rose[:, None, None, None], 0.0, state.y_history)
    rho = jnp.where(rose[:, None], 0.0, state.rho)
    shift = lambda history, new: jnp.concatenate([history[:, 1:], new[:, None]], axis=1)  # noqa: E731
    s_history = jnp.where(store[:, None, None, None], shift(s_history, s), s_history)
    y_history = jnp.where(store[:, None, None, None], shift(y_history, y), y_history)
    rho = jnp.where(store[:, None], shift(rho, 1.0 / jnp.where(store, sy, 1.0)), rho)
    direction = lbfgs_direction(s_history, y_history, rho, forces, state.initial_inverse_hessian)
    step = _limit_step(direction, settings.max_step)
    return _keep_inactive(state, {
        "positions": state.positions + step, "steps": state.steps + 1,
        "previous_positions": state.positions, "previous_forces": forces, "previous_energy": energy,
        "has_previous": jnp.ones_like(state.has_previous), "s_history": s_history, "y_history": y_history,
        "rho": rho}, active)


# Å: a slot's Lindh preconditioner is recomputed before a call once some atom has moved this far from
# where it was computed. 500 Ac-Ala3-NHMe metadynamics frames (student, float32, fmax 0.05 eV/Å, 8 per
# call; docs/results/ala3_minima/README.md): never recomputed, 187 steps per frame and 10 frames stopped at
# 2000; at 0.1, 0.2, 0.4, 0.7 and 1.2 Å, 34, 35, 37, 41 and 48 steps, all converged, and 782, 875, 977,
# 963 and 848 frames/min (a recomputation then cost ~1.6 ms on the host for 42 atoms; since the block-wise
# assembly of model_hessian, 1.4 ms, and 16-19 ms for 162 atoms).
PRECONDITIONER_REFRESH_A = 0.4


def _fresh_slot(settings, num_atoms: int) -> dict:
    """Host values (numpy, float64/int32/bool) of one slot's optimiser fields at the start of a structure,
    positions, done, energy and forces excepted; a preconditioned L-BFGS's H_0 is a placeholder here,
    set from the structure by :func:`minimise` before the slot's first call."""
    zeros = np.zeros((num_atoms, 3))
    if isinstance(settings, FireSettings):
        return {"velocities": zeros, "dt": np.float64(settings.dt_start), "alpha": np.float64(settings.alpha_start),
                "n_positive": np.int32(0), "steps": np.int32(0)}
    m = settings.memory
    return {"steps": np.int32(0), "previous_positions": zeros, "previous_forces": zeros,
            "previous_energy": np.float64(0.0), "has_previous": np.bool_(False),
            "s_history": np.zeros((m, num_atoms, 3)), "y_history": np.zeros((m, num_atoms, 3)), "rho": np.zeros(m),
            "initial_inverse_hessian": (np.zeros((3 * num_atoms, 3 * num_atoms)) if settings.uses_lindh(num_atoms)
                                        else np.full((1, 1), 1.0 / settings.alpha))}


def _state_class_and_update(settings):
    if isinstance(settings, FireSettings):
        return FireState, fire_update
    if isinstance(settings, LbfgsSettings):
        return LbfgsState, lbfgs_update
    raise UserError(f"settings must be FireSettings or LbfgsSettings, got {type(settings).__name__}")


def make_optimizer_call(model, params, settings, num_structures: int, num_atoms: int,
                        platform: str | None = None) -> Callable:
    """A jitted ``call(batch, state, stop_on_convergence, fmax, max_steps, min_distance) -> (state, iterations)``
    of the optimiser ``settings`` chooses (:class:`FireSettings` or :class:`LbfgsSettings`); fmax (eV/Å),
    max_steps and min_distance (Å) are arguments, not compiled in: one compilation serves any criterion.
    platform: where it will run ('cpu', 'gpu'; None: JAX's default device's), for the compile options.

    Runs until every slot is done, ``settings.steps_per_call`` iterations have passed, an atom has
    moved more than skin/2 from ``batch.positions`` (the list's reference), or, when
    ``stop_on_convergence``, a slot has newly finished. Each iteration evaluates energies and forces
    at the current positions (one force call for all slots), marks slots done (converged, out of
    steps, non-finite, or two atoms closer than ``min_distance``), and moves the others.
    """
    S, N = num_structures, num_atoms
    half_skin = 0.5 * settings.skin
    _, update = _state_class_and_update(settings)

    def evaluate(batch, positions):
        derivatives = energy_and_derivatives(model, params, batch._replace(positions=positions.reshape(S * N, 3)), S)
        return derivatives.energies, derivatives.forces.reshape(S, N, 3)

    def shortest_distance(batch, positions):
        """Shortest pair distance (Å) per slot over the Verlet list, which holds every pair that can be
        within the cutoff and so every pair that can be merging."""
        flat = positions.reshape(S * N, 3)
        vectors = flat[batch.pair_second] - flat[batch.pair_first] + batch.pair_shifts
        lengths = jnp.where(batch.pair_mask, jnp.sqrt(jnp.sum(vectors * vectors, axis=-1)), jnp.inf)
        return jax.ops.segment_min(lengths, batch.pair_structure, S)

    def call(batch, state, stop_on_convergence, fmax_criterion, max_steps, min_distance):
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
            merged = shortest_distance(batch, state.positions) < min_distance
            finished = ~state.done & ((fmax < fmax_criterion) | (state.steps >= max_steps)
                                      | ~jnp.isfinite(energy) | ~jnp.isfinite(fmax) | merged)
            state = state._replace(
                energy=jnp.where(state.done, state.energy, energy),
                forces=jnp.where(state.done[:, None, None], state.forces, forces),
                done=state.done | finished,
            )
            state = update(settings, state, energy, forces, ~state.done)
            return state, iterations + 1, jnp.any(finished)

        state, iterations, _ = jax.lax.while_loop(keep_going, body, (state, jnp.int32(0), jnp.bool_(False)))
        return state, iterations

    return xla_options.jit(call, platform)


# Compiled optimiser calls per potential, by (settings, S, N): repeated minimisations reuse them.
_CALLS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def optimizer_call_for(potential, settings, num_structures: int, num_atoms: int) -> Callable:
    """:func:`make_optimizer_call` on ``potential``'s model and parameters (cast to its dtype), on the first
    of its devices (its parameters placed there), made once per potential, settings and shape."""
    calls = _CALLS.setdefault(potential, {})
    key = (dataclasses.replace(settings, fmax=1.0, max_steps=1, min_distance=0.0), num_structures, num_atoms)
    if key not in calls:
        device = potential.devices[0]
        params = potential.params if device is None else jax.device_put(potential.params, device)
        model = potential.model_for(potential.uses_dense_long_range(False, num_atoms))
        calls[key] = make_optimizer_call(model, params, settings, num_structures, num_atoms,
                                         None if device is None else device.platform)
    return calls[key]


def _pair_list(positions: np.ndarray, cutoff: float | None) -> PairList:
    """Gas-phase half list within ``cutoff`` Å (None: all pairs)."""
    if cutoff is None:
        return all_pairs(len(positions))
    return half_pair_list(positions, cutoff, None, False)


def minimise(potential, numbers, positions, settings: FireSettings | LbfgsSettings | None = None, *,
             total_charge: float = 0.0, unpaired_electrons: float = 0.0,
             on_progress: Callable[[int, int], None] | None = None) -> MinimisationResult:
    """Minimise B gas-phase structures of the same atoms with FIRE or L-BFGS (the class of ``settings``),
    S = settings.structures_per_call at a time through ``potential``'s model (an
    :class:`~so3k_driver.evaluation.potential.Potential`).

    numbers: (N,) int; positions: (B, N, 3) Å; total_charge (e) and unpaired_electrons: SO3LR's
    embeddings, the same for every structure. ``on_progress(finished, converged)`` is called after
    every jitted call. Structures are fed in order into free slots; slots beyond B stay empty.
    ``settings`` None: the default optimiser's (DEFAULT_OPTIMIZER, as ``so3k minima``).
    """
    if settings is None:
        settings = OPTIMIZERS[DEFAULT_OPTIMIZER]()
    start = time.perf_counter()
    state_class, _ = _state_class_and_update(settings)
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
    needs_long = potential.config.needs_long_range_pairs and not potential.uses_dense_long_range(False, N)
    batcher = Batcher(dtype, pairs_per_call=None)
    optimizer_call = optimizer_call_for(potential, settings, S, N)
    device = potential.devices[0]

    out = MinimisationResult(positions.copy(), np.full(B, np.nan), np.zeros_like(positions), np.full(B, np.inf),
                             np.zeros(B, bool), np.zeros(B, np.int64), np.zeros(B, bool), 0, 0, 0.0)
    slot_frame = np.full(S, -1)
    fresh = _fresh_slot(settings, N)
    host = {"positions": np.repeat(positions[:1], S, axis=0), "done": np.ones(S, bool), "energy": np.zeros(S),
            "forces": np.zeros((S, N, 3))}
    host.update({k: np.repeat(np.asarray(v)[None], S, axis=0) for k, v in fresh.items()})
    # Set on the host at a refill and never changed by a call: kept in the compute dtype, so it goes to
    # the call without a cast and is not copied back ((S, 3N, 3N) with the Lindh preconditioner).
    host_only = [k for k in ("initial_inverse_hessian",) if k in host]
    host.update({k: host[k].astype(dtype) for k in host_only})
    # Where each slot's Lindh preconditioner was computed (inf: not yet; None: no preconditioner).
    preconditioned = isinstance(settings, LbfgsSettings) and settings.uses_lindh(N)
    preconditioned_at = np.full((S, N, 3), np.inf) if preconditioned else None
    next_frame, finished = 0, 0
    # One BLAS thread for the host-side algebra (the Lindh preconditioner's 3N x 3N inverse): OpenBLAS's
    # threads contend with XLA's between calls, 46 against 0.6 ms per inverse for Ac-Ala3-NHMe on 2 cores.
    with threadpool_limits(limits=1, user_api="blas"), jax.enable_x64(dtype == np.float64):
        while finished < B:
            for slot in np.flatnonzero(host["done"]):
                if slot_frame[slot] >= 0:  # harvest
                    b = slot_frame[slot]
                    out.positions[b] = host["positions"][slot]
                    out.energy[b] = host["energy"][slot]
                    out.forces[b] = host["forces"][slot]
                    out.fmax[b] = np.sqrt(np.max(np.sum(host["forces"][slot] ** 2, axis=-1)))
                    out.broken[b] = (settings.min_distance > 0
                                     and len(_pair_list(out.positions[b], settings.min_distance)) > 0)
                    out.converged[b] = bool(np.isfinite(out.energy[b]) and out.fmax[b] < settings.fmax
                                            and not out.broken[b])
                    out.steps[b] = host["steps"][slot]
                    slot_frame[slot] = -1
                    finished += 1
                if next_frame < B:  # refill
                    slot_frame[slot] = next_frame
                    host["positions"][slot] = positions[next_frame]
                    for key, value in fresh.items():
                        host[key][slot] = value
                    host["done"][slot] = False
                    if preconditioned_at is not None:
                        preconditioned_at[slot] = np.inf
                    next_frame += 1
            # Reported after the harvest, so a structure that converged in the last call counts as converged.
            if on_progress is not None and out.calls:
                on_progress(finished, int(out.converged.sum()))
            if finished >= B:
                break
            current = host["positions"]
            if preconditioned_at is not None:
                # Computed for a new structure, and again once it has moved PRECONDITIONER_REFRESH_A.
                # Lindh's Hessian is Cartesian: as groups rotate, a stale one puts soft curvature along what
                # are now stiff bonds, and the steps along them raise the energy over and over (an SO3LR
                # Ac-Ala15-NHMe MD frame stalled at 2-8 eV/Å for 2500 steps). A call moves no atom more
                # than skin/2 + max_step, which with this bounds how stale it can get.
                moved = np.max(np.sum((current - preconditioned_at) ** 2, axis=-1), axis=1)
                for slot in np.flatnonzero(~host["done"] & (moved > PRECONDITIONER_REFRESH_A**2)):
                    host["initial_inverse_hessian"][slot] = inverse_preconditioner(numbers, current[slot])
                    preconditioned_at[slot] = current[slot]
            structures = StructureBatch(
                np.broadcast_to(numbers, (S, N)), current, np.full(S, total_charge), np.full(S, unpaired_electrons),
                short=[_pair_list(current[s], short_cutoff) for s in range(S)],
                long=[_pair_list(current[s], long_cutoff) for s in range(S)] if needs_long else None)
            batch = batcher.pack(structures, np.arange(S))
            state = state_class(**{k: np.asarray(host[k], dtype) if host[k].dtype.kind == "f" else host[k]
                                   for k in state_class._fields})
            if device is not None:  # the potential's device, not JAX's default one
                batch, state = jax.device_put((batch, state), device)
            state, iterations = optimizer_call(batch, state, next_frame < B, dtype(settings.fmax),
                                               np.int32(settings.max_steps), dtype(settings.min_distance))
            host.update({k: np.array(v, np.float64 if np.asarray(v).dtype.kind == "f" else np.asarray(v).dtype)
                         for k, v in state._asdict().items() if k not in host_only})
            out.force_evaluations += int(iterations) * S
            out.calls += 1
    out.wall_time_s = time.perf_counter() - start
    return out
