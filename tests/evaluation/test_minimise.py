"""The batched FIRE and L-BFGS minimisers (evaluation/minimise.py) against ASE's optimisers on the same potential."""

import dataclasses
from pathlib import Path

import ase.io
import numpy as np
import pytest

from so3k_driver.errors import UserError
from so3k_driver.evaluation.minimise import LbfgsState, lbfgs_direction, lbfgs_update, minimise
from so3k_driver.evaluation.optimizers import FireSettings, LbfgsSettings, optimizer_settings

DATA = Path(__file__).resolve().parents[2] / "so3k_driver" / "data"
FMAX = 0.01  # eV/Å: tight enough that two optimisers agree on the energy within ENERGY_AGREEMENT
# float32 energies near -1767 eV resolve 1.2e-4 eV, and along soft torsions two runs stopped at fmax 0.01
# differ by up to 1.5 meV (batched L-BFGS against ASE on both frames, before and after a change of float32
# summation order: -0.85, -1.22, +1.46, +0.61 meV). The RMSD check below tells minima apart.
ENERGY_AGREEMENT = 2e-3  # eV


@pytest.fixture(scope="module")
def potential():
    from so3k_driver.evaluation.potential import Potential

    return Potential.load("ala3-xtb")


SETTINGS = FireSettings(fmax=FMAX, structures_per_call=2)  # one compiled call for every FIRE test here
LBFGS = LbfgsSettings(fmax=FMAX, structures_per_call=2, preconditioner="none")  # ASE's algorithm
LINDH = LbfgsSettings(fmax=FMAX, structures_per_call=2, preconditioner="lindh")  # the default for these sizes


@pytest.fixture(scope="module")
def starts():
    """Two Ac-Ala3-NHMe MD frames of the validation set (300-1200 K Langevin MD), Å."""
    md = [ase.io.read(DATA / "ala3_xtb_validation.xyz", index=i) for i in (0, 5)]
    return md[0].numbers, np.array([a.positions for a in md])


@pytest.fixture(scope="module")
def minimised(potential, starts):
    numbers, positions = starts
    return minimise(potential, numbers, positions, SETTINGS)


@pytest.fixture(scope="module")
def lbfgs_minimised(potential, starts):
    numbers, positions = starts
    return minimise(potential, numbers, positions, LBFGS)


def ase_minimum(potential, numbers, positions):
    from ase import Atoms
    from ase.optimize import FIRE

    from so3k_driver.evaluation.ase_calculator import SO3kCalculator

    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.calc = SO3kCalculator(potential=potential)
    FIRE(atoms, logfile=None).run(fmax=FMAX, steps=3000)
    return atoms.get_potential_energy(), np.linalg.norm(atoms.get_forces(), axis=1).max()


@pytest.mark.slow  # ASE's FIRE to 0.01 eV/Å takes ~30 s; the L-BFGS comparison below is the default-suite one
def test_batched_fire_reaches_the_minima_ase_finds(potential, starts, minimised, lbfgs_minimised):
    numbers, positions = starts
    result = minimised
    assert result.converged.all() and (result.fmax < FMAX).all()
    # the returned positions really are minima of the potential (no pair lost by the Verlet lists)
    check = potential.evaluate(numbers, result.positions)
    np.testing.assert_allclose(check.energy, result.energy, atol=2e-4)
    assert (np.linalg.norm(check.forces, axis=-1).max(axis=1) < FMAX * 1.05).all()
    for b in range(len(positions)):
        energy, fmax = ase_minimum(potential, numbers, positions[b])
        assert fmax < FMAX
        assert abs(result.energy[b] - energy) < ENERGY_AGREEMENT, (b, result.energy[b], energy)
    assert result.steps.min() > 0 and result.force_evaluations >= result.steps.sum()
    # at 0.01 eV/Å FIRE needs 2-3x the steps of L-BFGS (measured 410 and 403 against 148 and 226)
    assert (lbfgs_minimised.steps < result.steps).all(), (lbfgs_minimised.steps, result.steps)


def test_a_converged_structure_stays_put(potential, starts, lbfgs_minimised):
    numbers, _ = starts
    # FIRE started at L-BFGS's minima: converged before the first step, and masked slots do not move
    again = minimise(potential, numbers, lbfgs_minimised.positions, SETTINGS)
    assert again.converged.all() and (again.steps == 0).all()
    np.testing.assert_array_equal(again.positions, lbfgs_minimised.positions)


def test_progress_counts_a_structure_as_converged_in_the_call_that_converged_it(potential, starts, lbfgs_minimised):
    numbers, _ = starts
    reports = []
    # Started one step from L-BFGS's minima: both converge within the first call.
    minimise(potential, numbers, lbfgs_minimised.positions + 1e-3, dataclasses.replace(SETTINGS, max_steps=200),
             on_progress=lambda finished, converged: reports.append((finished, converged)))
    assert reports[-1] == (2, 2)
    assert all(converged <= finished for finished, converged in reports)


def test_unconverged_structures_are_reported(potential, starts):
    numbers, positions = starts
    # three structures in two slots: a slot is refilled, and the last call runs half empty
    result = minimise(potential, numbers, np.concatenate([positions, positions[:1]]),
                      dataclasses.replace(SETTINGS, max_steps=3))
    assert not result.converged.any() and (result.steps == 3).all() and (result.fmax > FMAX).all()


@pytest.mark.parametrize("kind, options, words", [
    (FireSettings, {"fmax": 0.0}, ("fmax", "0.0")),
    (FireSettings, {"structures_per_call": 0}, ("structures_per_call", "got 0")),
    (FireSettings, {"skin": -1.0}, ("skin", "-1.0")),
    (LbfgsSettings, {"memory": 0}, ("memory", "got 0")),
    (LbfgsSettings, {"memory": 2.5}, ("memory", "2.5")),
    (LbfgsSettings, {"alpha": -70.0}, ("alpha", "-70.0")),
    (LbfgsSettings, {"energy_rise": -0.1}, ("energy_rise", "-0.1")),
    (LbfgsSettings, {"max_step": 0.0}, ("max_step", "0.0")),
    (LbfgsSettings, {"min_distance": -0.5}, ("min_distance", "-0.5")),
    (LbfgsSettings, {"preconditioner": "exp"}, ("preconditioner", "auto, lindh, none", "'exp'")),
])
def test_bad_settings_name_the_value(kind, options, words):
    with pytest.raises(UserError) as error:
        kind(**options)
    message = str(error.value)
    assert len(message.splitlines()) == 1 and all(word in message for word in words), message


def test_the_lindh_preconditioner_is_used_up_to_its_size_limit():
    from so3k_driver.evaluation.optimizers import MAX_PRECONDITIONED_ATOMS

    auto, lindh, none = (LbfgsSettings(preconditioner=p) for p in ("auto", "lindh", "none"))
    assert auto.uses_lindh(42) and auto.uses_lindh(MAX_PRECONDITIONED_ATOMS)
    assert not auto.uses_lindh(MAX_PRECONDITIONED_ATOMS + 1) and not none.uses_lindh(42) and lindh.uses_lindh(42)
    with pytest.raises(UserError, match=f"at most {MAX_PRECONDITIONED_ATOMS} atoms, got 1200: use preconditioner none"):
        lindh.uses_lindh(1200)


def test_an_unknown_optimizer_is_named():
    with pytest.raises(UserError, match="'bfgs'.*fire, lbfgs"):
        optimizer_settings("bfgs")
    assert optimizer_settings("lbfgs", fmax=0.01) == LbfgsSettings(fmax=0.01)


def test_no_structures_is_a_user_error(potential, starts):
    numbers, _ = starts
    with pytest.raises(UserError, match="no structures"):
        minimise(potential, numbers, np.zeros((0, len(numbers), 3)))


# ---------------------------------------------------------------- L-BFGS


def ase_lbfgs_minimum(potential, numbers, positions):
    from ase import Atoms
    from ase.optimize import LBFGS as AseLBFGS

    from so3k_driver.evaluation.ase_calculator import SO3kCalculator

    atoms = Atoms(numbers=numbers, positions=positions)
    atoms.calc = SO3kCalculator(potential=potential)
    AseLBFGS(atoms, logfile=None).run(fmax=FMAX, steps=3000)
    return atoms.get_potential_energy(), atoms.positions.copy()


def test_batched_lbfgs_reaches_the_minima_ase_lbfgs_finds(potential, starts, lbfgs_minimised):
    numbers, positions = starts
    result = lbfgs_minimised
    assert result.converged.all() and (result.fmax < FMAX).all()
    check = potential.evaluate(numbers, result.positions)
    np.testing.assert_allclose(check.energy, result.energy, atol=2e-4)
    assert (np.linalg.norm(check.forces, axis=-1).max(axis=1) < FMAX * 1.05).all()
    for b in range(1):  # ASE's run (~10 s each) on the first; the slow FIRE test compares both with ASE
        energy, geometry = ase_lbfgs_minimum(potential, numbers, positions[b])
        assert abs(result.energy[b] - energy) < ENERGY_AGREEMENT, (b, result.energy[b], energy)
        # same start, same algorithm: the same minimum, not just one as deep (measured RMSD 0.008-0.049 Å)
        rmsd = np.sqrt(np.mean(np.sum((result.positions[b] - geometry) ** 2, axis=-1)))
        assert rmsd < 0.05, (b, rmsd)


def test_preconditioned_lbfgs_stops_at_minima_ase_agrees_with_in_fewer_steps(potential, starts, lbfgs_minimised):
    """Lindh-preconditioned L-BFGS takes another path than ASE's L-BFGS, so it may end in another minimum;
    what must hold is that it ends at one: ASE's L-BFGS started there stays there."""
    from ase import Atoms
    from ase.optimize import LBFGS as AseLBFGS

    from so3k_driver.evaluation.ase_calculator import SO3kCalculator

    numbers, positions = starts
    result = minimise(potential, numbers, positions, LINDH)
    assert result.converged.all() and (result.fmax < FMAX).all()
    check = potential.evaluate(numbers, result.positions)
    assert (np.linalg.norm(check.forces, axis=-1).max(axis=1) < FMAX * 1.05).all()
    atoms = Atoms(numbers=numbers, positions=result.positions[0])
    atoms.calc = SO3kCalculator(potential=potential)
    AseLBFGS(atoms, logfile=None).run(fmax=FMAX / 2, steps=500)
    assert result.energy[0] - atoms.get_potential_energy() < ENERGY_AGREEMENT
    assert np.sqrt(np.mean(np.sum((atoms.positions - result.positions[0]) ** 2, axis=-1))) < 0.05
    # the point of the preconditioner (measured here: see the assertion message)
    assert result.steps.sum() < 0.8 * lbfgs_minimised.steps.sum(), (result.steps, lbfgs_minimised.steps)


def test_the_lindh_preconditioner_follows_the_structure(potential, starts, monkeypatch):
    """Every call starts each moving structure from Lindh's Hessian of where it is then, not of where it
    started: a stale Cartesian one stalled an SO3LR Ac-Ala15-NHMe frame at 2-8 eV/Å for 2500 steps."""
    import so3k_driver.evaluation.minimise as minimise_module
    from so3k_driver.evaluation.model_hessian import inverse_preconditioner

    numbers, positions = starts
    seen = []
    make_call = minimise_module.optimizer_call_for

    def recording_call_for(*args):
        call = make_call(*args)

        def recorded(batch, state, *rest):
            seen.append((np.array(state.positions), np.array(state.initial_inverse_hessian), np.array(state.done)))
            return call(batch, state, *rest)
        return recorded

    monkeypatch.setattr(minimise_module, "optimizer_call_for", recording_call_for)
    settings = dataclasses.replace(LINDH, steps_per_call=5, max_steps=30)
    # by default recomputed once an atom has moved PRECONDITIONER_REFRESH_A (0.4 Å): each slot's changes on the way
    minimise(potential, numbers, positions, settings)
    for slot in range(2):
        assert len({inverse[slot].tobytes() for _, inverse, _ in seen}) >= 2
    # refreshed whenever anything moved: every call's preconditioner is that of the call's positions
    seen.clear()
    monkeypatch.setattr(minimise_module, "PRECONDITIONER_REFRESH_A", 0.0)
    result = minimise(potential, numbers, positions, settings)
    assert len(seen) >= 4 and result.steps.min() > 5
    for call_positions, inverse, done in seen:
        for slot in np.flatnonzero(~done):
            np.testing.assert_allclose(inverse[slot], inverse_preconditioner(numbers, call_positions[slot]),
                                       rtol=1e-5, atol=1e-6)


def test_a_converged_structure_stays_put_under_lbfgs(potential, starts, lbfgs_minimised):
    numbers, _ = starts
    again = minimise(potential, numbers, lbfgs_minimised.positions, LBFGS)
    assert again.converged.all() and (again.steps == 0).all()
    np.testing.assert_array_equal(again.positions, lbfgs_minimised.positions)


def test_merging_atoms_stop_a_structure_as_broken(potential, starts, lbfgs_minimised):
    numbers, positions = starts
    assert not lbfgs_minimised.broken.any()
    # every X-H bond (~1.0-1.1 Å) is "merged" at 1.5 Å: both stop before their first step, not converged
    result = minimise(potential, numbers, positions, dataclasses.replace(LBFGS, min_distance=1.5))
    assert result.broken.all() and not result.converged.any() and (result.steps == 0).all()
    np.testing.assert_allclose(result.positions, positions, atol=1e-5)  # unmoved (float32 round trip)


def test_lbfgs_refills_slots_and_reports_unconverged(potential, starts):
    numbers, positions = starts
    result = minimise(potential, numbers, np.concatenate([positions, positions[:1]]),
                      dataclasses.replace(LBFGS, max_steps=4))
    assert not result.converged.any() and (result.steps == 4).all() and (result.fmax > FMAX).all()
    # the third structure restarted from a clean history in a refilled slot: it repeats the first exactly
    np.testing.assert_allclose(result.positions[2], result.positions[0], atol=1e-5)


def _state(rng, S=3, m=4, N=5):
    """An L-BFGS state with random positions and forces (Å, eV/Å) and one stored pair per slot."""
    shape = (S, N, 3)
    s_history = np.zeros((S, m, N, 3))
    y_history = np.zeros((S, m, N, 3))
    s_history[:, -1] = rng.normal(scale=0.05, size=shape)
    y_history[:, -1] = 50.0 * s_history[:, -1] + rng.normal(scale=0.1, size=shape)
    rho = np.zeros((S, m))
    rho[:, -1] = 1.0 / np.sum(s_history[:, -1] * y_history[:, -1], axis=(1, 2))
    state = LbfgsState(
        positions=rng.normal(size=shape), steps=np.full(S, 7, np.int32), done=np.zeros(S, bool),
        energy=np.zeros(S), forces=np.zeros(shape), previous_positions=rng.normal(size=shape),
        previous_forces=rng.normal(size=shape), previous_energy=np.full(S, -10.0), has_previous=np.ones(S, bool),
        s_history=s_history, y_history=y_history, rho=rho, initial_inverse_hessian=np.full((S, 1, 1), 1.0 / 70.0))
    # float32 as in a default (float32) run, so that unchanged values compare exactly
    return state._replace(**{k: v.astype(np.float32) for k, v in state._asdict().items() if v.dtype == np.float64})


def test_two_loop_recursion_is_the_bfgs_inverse_hessian_update():
    rng = np.random.default_rng(3)
    state = _state(rng)
    forces = rng.normal(size=state.positions.shape).astype(np.float32)
    alpha = 70.0
    direction = np.asarray(lbfgs_direction(state.s_history, state.y_history, state.rho, forces,
                                           np.full((len(forces), 1, 1), 1.0 / alpha, np.float32)))
    for b in range(len(forces)):
        s, y, r = (np.asarray(a, np.float64) for a in (state.s_history[b, -1].ravel(),
                                                         state.y_history[b, -1].ravel(), state.rho[b, -1]))
        eye = np.eye(len(s))
        inverse = (eye - r * np.outer(s, y)) @ (eye / alpha) @ (eye - r * np.outer(y, s)) + r * np.outer(s, s)
        np.testing.assert_allclose(direction[b].ravel(), inverse @ forces[b].ravel(), rtol=1e-4, atol=1e-7)


def test_two_loop_recursion_with_a_matrix_as_initial_inverse_hessian():
    """A preconditioned L-BFGS: H_0 is a (3N, 3N) matrix per slot, and the BFGS update wraps it."""
    rng = np.random.default_rng(5)
    state = _state(rng)
    S, _, N, _ = state.s_history.shape
    forces = rng.normal(size=state.positions.shape).astype(np.float32)
    roots = rng.normal(size=(S, 3 * N, 3 * N))
    h0 = (np.einsum("sij,skj->sik", roots, roots) / (3 * N) + 0.01 * np.eye(3 * N)).astype(np.float32)
    direction = np.asarray(lbfgs_direction(state.s_history, state.y_history, state.rho, forces, h0))
    for b in range(S):
        s, y, r = (np.asarray(a, np.float64) for a in (state.s_history[b, -1].ravel(),
                                                         state.y_history[b, -1].ravel(), state.rho[b, -1]))
        eye = np.eye(len(s))
        inverse = (eye - r * np.outer(s, y)) @ h0[b] @ (eye - r * np.outer(y, s)) + r * np.outer(s, s)
        np.testing.assert_allclose(direction[b].ravel(), inverse @ forces[b].ravel(), rtol=2e-4, atol=1e-6)


def test_lbfgs_update_skips_bad_curvature_clears_on_energy_rise_and_leaves_inactive_slots():
    rng = np.random.default_rng(4)
    state = _state(rng)
    s = state.positions - state.previous_positions
    # slot 0: y = 30 s (positive curvature, stored); slot 1: y = -30 s (negative, skipped);
    # slot 2: positive curvature but the energy rose by 0.5 eV (history cleared, pair not stored)
    forces = (state.previous_forces - np.array([30.0, -30.0, 30.0])[:, None, None] * s).astype(np.float32)
    energy = np.array([-11.0, -11.0, -9.5], np.float32)
    active = np.array([True, True, True])
    new = lbfgs_update(LbfgsSettings(memory=4), state, energy, forces, active)
    assert new.rho[0, -1] == pytest.approx(1.0 / (30.0 * np.sum(s[0] ** 2)), rel=1e-5)
    np.testing.assert_allclose(new.rho[0, -2], state.rho[0, -1], rtol=1e-6)  # older pair shifted back
    np.testing.assert_array_equal(new.rho[1], state.rho[1])
    assert not np.any(new.rho[2]) and not np.any(new.s_history[2])
    # with no history the step of slot 2 is steepest descent F/alpha (here below the 0.2 Å cap)
    step = np.asarray(new.positions[2] - state.positions[2])
    expected = forces[2] / 70.0
    scale = min(1.0, 0.2 / np.linalg.norm(expected, axis=-1).max())
    np.testing.assert_allclose(step, expected * scale, rtol=1e-4, atol=1e-6)
    for b in range(3):
        assert np.sum(np.asarray(new.positions[b] - state.positions[b]) * forces[b]) > 0  # downhill
        assert np.linalg.norm(np.asarray(new.positions[b] - state.positions[b]), axis=-1).max() <= 0.2 + 1e-6
    assert (np.asarray(new.steps) == 8).all() and np.asarray(new.has_previous).all()

    frozen = lbfgs_update(LbfgsSettings(memory=4), state, energy, forces, np.array([True, False, False]))
    for field in LbfgsState._fields:
        for b in (1, 2):  # inactive (converged or empty) slots: nothing changes
            np.testing.assert_array_equal(np.asarray(getattr(frozen, field))[b], np.asarray(getattr(state, field))[b],
                                          err_msg=field)
