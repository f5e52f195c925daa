"""The run model's energy error along the end-to-end distance (sampling/analysis/energy_error_profile.py)."""

from types import SimpleNamespace

import numpy as np
import pytest

from so3k_driver.errors import UserError
from so3k_driver.sampling.analysis import energy_error_profile as profile_module
from so3k_driver.units import KJ_PER_MOL_IN_EV


def test_a_linear_tilt_is_found_in_the_quarters_the_slope_and_compact_minus_extended():
    rng = np.random.default_rng(0)
    end_to_end = rng.uniform(18.0, 53.0, 200)  # Å
    reference = rng.normal(-290.0, 1.0, 200)  # eV
    model = reference + 3.0 + 0.03 * end_to_end  # compact chains too low: +0.3 eV per 10 Å, constant shift 3 eV
    helix = (end_to_end <= np.sort(end_to_end)[49]).astype(float)  # the 50 most compact frames are helical
    record = profile_module.profile(end_to_end, helix, model, reference)
    assert record["slope_eV_per_10A"] == pytest.approx(0.3)
    assert record["correlation_end_to_end"] == pytest.approx(1.0)
    assert record["offset_eV"] == pytest.approx(3.0 + 0.03 * end_to_end.mean())  # the mean error, removed
    assert np.mean(record["per_frame"]["error_eV"]) == pytest.approx(0.0, abs=1e-5)
    quarters = record["quarters"]
    assert sum(q["frames"] for q in quarters) == 200
    assert [q["end_to_end_A"][0] for q in quarters] == sorted(q["end_to_end_A"][0] for q in quarters)
    ordered = np.sort(end_to_end)
    expected = 0.03 * (ordered[:50].mean() - ordered[150:].mean())
    assert record["compact_minus_extended_eV"] == pytest.approx(expected)
    assert record["compact_minus_extended_eV"] < -0.7
    assert quarters[0]["mean_helix_fraction"] == 1.0 and quarters[1]["mean_helix_fraction"] == 0.0
    assert quarters[0]["standard_error_eV"] > 0
    text = "\n".join(profile_module.table(record))
    assert f"{expected / KJ_PER_MOL_IN_EV:+.1f} kJ/mol" in text and "slope +0.300 eV per 10 Å (r = +1.00)" in text


def test_no_error_gives_a_flat_profile_without_a_correlation():
    end_to_end = np.linspace(20, 50, 8)
    record = profile_module.profile(end_to_end, np.zeros(8), np.full(8, -5.0), np.full(8, -5.0))
    assert record["compact_minus_extended_eV"] == 0.0 and record["correlation_end_to_end"] is None
    with pytest.raises(ValueError, match="at least 8 frames"):
        profile_module.profile(end_to_end[:7], np.zeros(7), np.zeros(7), np.zeros(7))
    with pytest.raises(ValueError, match="differ in length"):
        profile_module.profile(end_to_end, np.zeros(7), np.zeros(8), np.zeros(8))


def test_frames_are_spread_after_the_burn_in():
    chosen = profile_module.spread_frames(100, 0.1, 10)
    assert len(chosen) == 10 and chosen[0] == 10 and chosen[-1] == 99 and np.all(np.diff(chosen) > 0)
    assert list(profile_module.spread_frames(20, 0.5, 100)) == list(range(10, 20))  # fewer than asked: all
    assert not profile_module.enough_frames(8, 0.5)
    with pytest.raises(UserError, match="too few frames"):
        profile_module.spread_frames(8, 0.5, 10)
    for bad in (-1, 3, 2.5):
        with pytest.raises(UserError, match="0 \\(none\\) or an integer >= 8"):
            profile_module.check_frames(bad)
    profile_module.check_frames(0)


class TiltedPotential:
    """Energy = 0.05 eV per Å of the distance between two atoms (model) or 0 (reference), per structure."""

    def __init__(self, tilt, pair, dtype="float64"):
        self.tilt, self.pair, self.dtype, self.calls = tilt, pair, dtype, []

    def evaluate(self, numbers, positions):
        self.calls.append(len(positions))
        i, j = self.pair
        return SimpleNamespace(energy=self.tilt * np.linalg.norm(positions[:, i] - positions[:, j], axis=-1))


def test_the_analysis_step_evaluates_spread_frames_in_batches_and_records_where_they_came_from():
    from so3k_driver.sampling.analysis.report import _energy_error_profile

    rng = np.random.default_rng(2)
    frames = 60
    positions = rng.normal(size=(frames, 5, 3)) * np.linspace(1, 20, frames)[:, None, None]
    end_to_end = np.linalg.norm(positions[:, 0] - positions[:, 4], axis=-1)
    lowest = SimpleNamespace(positions=positions, time=np.arange(frames) * 0.5, temperature=300.0)
    observed = SimpleNamespace(end_to_end=end_to_end, helix_torsion=np.zeros(frames))
    model, reference = TiltedPotential(0.05, (0, 4)), TiltedPotential(0.0, (0, 4))
    potentials = {"model": ("student.so3k", model), "reference": ("so3lr:/x", reference)}
    record = _energy_error_profile(["C", "H", "H", "H", "H"], lowest, observed, potentials, 40, 0.25,
                                   lambda line: None)
    assert record["frames"] == 40 and record["frame_indices"][0] == 15  # burn-in: 15 of 60 frames
    assert model.calls == [16, 16, 8]  # BATCH structures per call
    assert record["slope_eV_per_10A"] == pytest.approx(0.5)
    assert record["time_ps"][0] == 7.5 and record["temperature_K"] == 300.0 and record["reference_dtype"] == "float64"
    too_short = SimpleNamespace(positions=positions[:9], time=lowest.time[:9], temperature=300.0)
    assert _energy_error_profile(["C"] * 5, too_short, observed, potentials, 40, 0.25, lambda line: None) is None


def test_the_split_by_term_puts_a_tilt_in_the_term_that_carries_it():
    """Synthetic single points: the model's electrostatics tilt compact chains down, its dispersion is off by
    a constant, its local part is right. The tilt lands in electrostatics, nothing in the others, and the
    parts add up to the total quarter by quarter (mean removal is linear)."""
    rng = np.random.default_rng(3)
    frames = 40
    end_to_end = np.linspace(18.0, 53.0, frames)
    reference = {"electrostatics": rng.normal(-3.0, 0.2, frames), "dispersion": rng.normal(-8.0, 0.3, frames),
                 "charges": rng.normal(0.0, 0.3, (frames, 12))}
    local = rng.normal(-280.0, 1.0, frames)
    reference["energy"] = local + reference["electrostatics"] + reference["dispersion"]
    model = {"electrostatics": reference["electrostatics"] + 0.02 * end_to_end, "dispersion": reference["dispersion"] + 0.4,
             "charges": reference["charges"] + 0.01}
    model["energy"] = local + model["electrostatics"] + model["dispersion"]
    record = profile_module.profile(end_to_end, np.zeros(frames), model["energy"], reference["energy"])
    record.update(profile_module.term_split(end_to_end, np.zeros(frames), model, reference))
    terms = record["terms"]
    assert list(terms) == ["electrostatics", "dispersion", "local"]
    assert terms["electrostatics"]["compact_minus_extended_eV"] == pytest.approx(record["compact_minus_extended_eV"])
    assert terms["electrostatics"]["compact_minus_extended_eV"] < -0.5
    for name in ("dispersion", "local"):
        assert terms[name]["error_rms_eV"] == pytest.approx(0.0, abs=1e-9)
    assert terms["dispersion"]["offset_eV"] == pytest.approx(0.4)
    for k, row in enumerate(record["quarters"]):
        assert row["mean_error_eV"] == pytest.approx(sum(t["quarters"][k]["mean_error_eV"] for t in terms.values()))
    assert record["charge_rmse_e"] == pytest.approx(0.01)
    text = "\n".join(profile_module.markdown({**record, "reference": "so3lr:/x", "reference_dtype": "float64",
                                              "temperature_K": 300.0, "model": "student.so3k"}))
    assert "### Which term the error is in" in text and "10.0 me RMSE" in text
    assert profile_module.term_split(end_to_end, np.zeros(frames), {"energy": model["energy"]}, reference) is None


def displaced_ala3(count: int, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    import ase.io

    from so3k_driver.sampling.plumed_inputs import bundled_structure

    molecule = ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz"))
    rng = np.random.default_rng(seed)
    return molecule.numbers, molecule.positions + rng.normal(scale=0.05, size=(count, *molecule.positions.shape))


def test_recomputed_long_range_terms_are_the_models_own():
    """The bundled SO3LR-type student in float64, gas phase: switching off its electrostatics (or dispersion)
    lowers its energy by exactly what single_points recomputes from its own charges (or Hirshfeld ratios)."""
    import dataclasses

    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.io.model_files import load_model

    numbers, positions = displaced_ala3(3)
    config, params, _ = load_model("default")
    full = Potential(config, params, dtype="float64", lr_cutoff=None)
    assert profile_module.splits_terms(full)
    points = profile_module.single_points(full, numbers, positions)
    assert points["charges"].shape == (3, len(numbers))
    for term, switch in (("electrostatics", "electrostatics"), ("dispersion", "dispersion")):
        without = Potential(dataclasses.replace(config, **{switch: False}), params, dtype="float64", lr_cutoff=None)
        energy_without = profile_module.single_points(without, numbers, positions)["energy"]
        assert np.all(np.abs(points[term]) > 1e-3)  # eV: the term is there
        np.testing.assert_allclose(points["energy"] - energy_without, points[term], atol=1e-9, rtol=0)
    assert not profile_module.splits_terms(Potential.load("ala3-xtb"))  # no charges: no split


def test_the_summary_says_who_sampled_the_frames():
    record = {"model": "student.so3k", "reference": "so3lr:/x"}
    assert "sampled by the run's model" in profile_module.sampling_caveat(record)
    assert "sampled by the run's model" in profile_module.sampling_caveat({**record, "sampled_by": "student.so3k"})
    assert "by the reference itself" in profile_module.sampling_caveat({**record, "sampled_by": "so3lr:/x"})
    assert "sampled by v6.so3k, neither" in profile_module.sampling_caveat({**record, "sampled_by": "v6.so3k"})
    assert "by the reference itself" in profile_module.sampling_caveat({**record, "sampled_by": ["so3lr:/x"]})
    changed = profile_module.sampling_caveat({**record, "sampled_by": ["v6.so3k", "so3lr:/x"]})
    assert "sampled by v6.so3k, then so3lr:/x (the study changed models)" in changed
