"""Unbiased averages of a biased run's trajectory frames (sampling/analysis/reweighted_observables.py)."""

import numpy as np
import pytest

from so3k_driver.sampling.analysis.observables import TemperatureObservables
from so3k_driver.sampling.analysis.reweighted_observables import (
    frame_log_weights, reweighted_averages, running_average)
from so3k_driver.sampling.analysis.free_energy import thermal_energy
from so3k_driver.units import KJ_PER_MOL_IN_EV

TEMPERATURE = 300.0


def frames(values) -> TemperatureObservables:
    values = np.asarray(values, float)
    count = len(values)
    return TemperatureObservables(TEMPERATURE, np.arange(count) * 0.5, end_to_end=values, gyration=values,
                                  helix_torsion=values, helix_hbond=values, phi=np.zeros((count, 1)),
                                  psi=np.zeros((count, 1)), three_ten_hbond=values)


def test_a_linearly_biased_gaussian_reweights_to_the_unbiased_mean():
    # unbiased: x ~ N(0, 1), i.e. U = kT x²/2; the bias V = -kT μ x shifts the sampled x to N(μ, 1)
    kT, mu = thermal_energy(TEMPERATURE), 1.0
    x = np.random.default_rng(7).normal(mu, 1.0, 20_000)
    bias_eV = -kT * mu * x * KJ_PER_MOL_IN_EV
    steps = np.arange(len(x)) * 10
    log_w = frame_log_weights(steps, bias_eV, colvar_steps=[0, steps[-1]], colvar_offset_kJmol=[7.0, 7.0],
                              temperature_K=TEMPERATURE)
    result = reweighted_averages(frames(x), log_w, burn_in=0.0)
    assert abs(result.biased["end_to_end"] - mu) < 0.03
    assert abs(result.means["end_to_end"]) < 0.05
    assert abs(result.first_half["end_to_end"]) < 0.08 and abs(result.second_half["end_to_end"]) < 0.08
    # Kish's effective size of these weights: N exp(-μ²) on average
    assert 0.25 < result.effective / len(x) < 0.5


def test_each_frame_is_offset_by_c_at_its_own_time():
    # two stretches of an unbiased run whose bias offset c(t) jumped by 50 kJ/mol in between: V - c(t) = 0
    # everywhere, so every frame counts the same. Without the offset the second stretch would weigh e^20 more.
    steps = np.arange(200) * 5
    bias_kJmol = np.where(steps < 500, 0.0, 50.0)
    values = np.where(steps < 500, 0.0, 1.0)
    colvar_steps = np.arange(0, 1000, 50) + 1  # PLUMED numbers its records from step 1
    offset = np.where(colvar_steps < 500, 0.0, 50.0)
    log_w = frame_log_weights(steps, bias_kJmol * KJ_PER_MOL_IN_EV, colvar_steps, offset, TEMPERATURE)
    away_from_the_jump = log_w[(steps < 450) | (steps > 550)]
    assert np.ptp(away_from_the_jump) < 1e-12
    result = reweighted_averages(frames(values), log_w, burn_in=0.0)
    assert abs(result.means["helix_torsion"] - 0.5) < 0.03
    assert result.biased["helix_torsion"] == pytest.approx(0.5)


def test_the_running_average_ends_at_the_full_average():
    rng = np.random.default_rng(3)
    values, log_w = rng.random(50), rng.normal(size=50)
    result = reweighted_averages(frames(values), log_w, burn_in=0.0)
    running = running_average(values, log_w)
    assert running[0] == pytest.approx(values[0])
    assert running[-1] == pytest.approx(result.means["gyration"])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="3 weights for 4 frames"):
        reweighted_averages(frames([0, 1, 2, 3]), np.zeros(3))
    with pytest.raises(ValueError, match="fewer than 2"):
        reweighted_averages(frames([1.0]), np.zeros(1))
    with pytest.raises(ValueError, match="no COLVAR records"):
        frame_log_weights([0], [0.0], [], [], TEMPERATURE)
    with pytest.raises(ValueError, match="not in time order"):
        frame_log_weights([0], [0.0], [10, 0], [0.0, 0.0], TEMPERATURE)


def test_weight_shares_say_which_walker_carries_the_average():
    from so3k_driver.sampling.analysis.reweighted_observables import weight_shares

    systems = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    log_w = np.log(np.array([1, 1, 1, 1, 1, 1, 1, 1, 6, 1.0]))  # walker 2's third frame weighs 6
    shares = weight_shares(log_w, systems, ["W-0", "W-1", "W-2"], burn_in=0.0)
    assert shares == pytest.approx({"W-0": 4 / 15, "W-1": 3 / 15, "W-2": 8 / 15})
    dropped = weight_shares(log_w, systems, ["W-0", "W-1", "W-2"], burn_in=0.3)  # frames 0-2 dropped
    assert dropped == pytest.approx({"W-0": 3 / 12, "W-1": 2 / 12, "W-2": 7 / 12})
