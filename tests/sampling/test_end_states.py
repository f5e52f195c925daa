"""End states re-evaluated with a reference model (sampling/analysis/end_states.py)."""

import json

import ase.io
import numpy as np
import pytest

from so3k_driver.errors import UserError
from so3k_driver.sampling.analysis import end_states
from so3k_driver.sampling.plumed_inputs import bundled_structure


def test_the_most_compact_and_most_extended_frames_are_chosen_apart_and_after_the_burn_in():
    e2e = np.array([10.0, 50.0, 20.0, 21.0, 22.0, 45.0, 46.0, 30.0, 23.0, 47.0])
    compact, extended = end_states.select_end_states(e2e, count=2, burn_in=0.1, separation=2)
    assert compact == [2, 4]  # frame 0 is burn-in; frame 3 (21 Å) is next to frame 2
    assert extended == [1, 9]  # 50 and 47 Å, the two largest, 8 frames apart
    compact, extended = end_states.select_end_states(e2e, count=3, burn_in=0.0, separation=1)
    assert compact == [0, 2, 3] and extended == [1, 9, 6]
    assert not set(compact) & set(extended)


def test_a_bad_count_or_too_few_frames_is_one_user_error():
    with pytest.raises(UserError, match="integer >= 1"):
        end_states.select_end_states(np.arange(5.0), count=0, burn_in=0.0, separation=1)
    with pytest.raises(UserError, match="too few frames"):
        end_states.select_end_states(np.arange(1.0), count=1, burn_in=0.0, separation=1)


@pytest.mark.slow  # two precisions: two compilations of the model and of the optimiser (~1 min)
def test_a_model_against_itself_in_float64_agrees_and_relaxation_lowers_every_energy():
    """Displaced Ac-Ala3-NHMe frames, the bundled model in float32 against itself in float64: the groups
    are split by end-to-end distance, relaxing lowers every energy, and the two precisions agree to
    float32 noise on the compact − extended difference and the forces."""
    from so3k_driver.evaluation.potential import Potential

    molecule = ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz"))
    rng = np.random.default_rng(0)
    positions = np.stack([molecule.positions + rng.normal(scale=0.05, size=molecule.positions.shape)
                          for _ in range(4)])
    record = end_states.compare_end_states(
        molecule.numbers, positions, np.arange(4.0), np.zeros(4), 300.0, Potential.load("ala3-xtb"),
        Potential.load("ala3-xtb", dtype="float64"), "ala3-xtb", "ala3-xtb (float64)", count=2, burn_in=0.0,
        separation=1, report=lambda line: None)
    frames = record["frames"]
    assert [f["group"] for f in frames] == ["compact", "compact", "extended", "extended"]
    assert max(f["end_to_end_A"] for f in frames[:2]) < min(f["end_to_end_A"] for f in frames[2:])
    for f in frames:
        for who in ("model", "reference"):
            assert f["relaxed_energy_eV"][who] < f["energy_eV"][who] - 0.1  # eV: 0.05 Å noise costs more
    for key in ("sampled", "relaxed"):
        pair = record["compact_minus_extended_eV"][key]
        assert pair["model_minus_reference"] == pytest.approx(pair["model"] - pair["reference"])
    assert abs(record["compact_minus_extended_eV"]["sampled"]["model_minus_reference"]) < 2e-3  # eV
    assert record["force_mae_meV_per_A"] < 1.0
    assert record["relaxations_converged"] == {"model": 4, "reference": 4}
    for frame in record["frames"]:  # per frame: converged below fmax, in some steps
        for who in ("model", "reference"):
            relaxation = frame["relaxation"][who]
            assert relaxation["converged"] and relaxation["fmax_eV_per_A"] < record["fmax_eV_per_A"]
            assert relaxation["steps"] >= 1
    assert record["kT_eV"] == pytest.approx(0.025852, abs=1e-6)  # 300 K
    assert 0 < record["energy_error_spread_eV"] < 2e-3  # float32 noise on a 42-atom energy
    assert record["ensemble_shift_eV"] == pytest.approx(record["energy_error_spread_eV"] ** 2 / record["kT_eV"])
    for frame in record["frames"]:
        worst = [a["eV_per_A"] for a in frame["largest_force_errors"]]
        assert len(worst) == 3 and worst == sorted(worst, reverse=True) and 0 < worst[0] < 1e-2
    lines = "\n".join(end_states.markdown(record))
    assert "compact − extended" in lines and "| relaxed |" in lines
    assert "its ensemble is close to the reference's" in lines


def test_the_largest_force_errors_name_their_atoms_as_chemists_count_them():
    """Ac-Ala3-NHMe's first atoms are C, H, H, H: an error of 2 eV/Å on the fourth atom and 1 on the
    first come first, as 'H4' and 'C1'."""
    molecule = ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz"))
    assert list(molecule.get_chemical_symbols()[:4]) == ["C", "H", "H", "H"]
    error = np.zeros((len(molecule), 3))
    error[3] = [0.0, 2.0, 0.0]
    error[0] = [0.6, 0.0, 0.8]
    error[10] = [0.0, 0.0, -0.5]
    worst = end_states.largest_force_errors(molecule.numbers, error)
    assert [a["atom"] for a in worst[:2]] == ["H4", "C1"] and [a["index"] for a in worst] == [3, 0, 10]
    assert [a["eV_per_A"] for a in worst] == pytest.approx([2.0, 1.0, 0.5])


def test_the_spread_is_taken_within_the_groups():
    """A compact − extended shift of 0.45 eV (v13 against SO3LR at 380 ps) is reported apart: it must not
    count as scatter. Per group ±0.1 eV around its own mean: σ = √(4 × 0.01 / 2) = 0.141 eV."""
    errors = np.array([-0.55, -0.35, 0.1, -0.1])
    assert end_states.within_group_spread(errors, 2) == pytest.approx(np.sqrt(0.04 / 2))
    assert end_states.within_group_spread(errors + np.array([0, 0, 5, 5]), 2) == pytest.approx(np.sqrt(0.02))
    assert end_states.within_group_spread(np.array([0.1, 0.3]), 1) is None  # one frame per group


def test_an_energy_error_spread_of_several_kT_says_the_ensembles_differ():
    """v13 against SO3LR on its own folding study's frames: σ ≈ 0.13 eV, 5 kT at 300 K (docs/results/
    so3lr_student_v13, "On frames v13 sampled itself"): σ²/kT = 0.65 eV, reweighting keeps ~e^-25."""
    record = {"energy_error_spread_eV": 0.13, "kT_eV": 0.025852, "ensemble_shift_eV": 0.13**2 / 0.025852,
              "compact_frames": 4, "extended_frames": 4, "frames": [{}] * 8}
    verdict = end_states._ensemble_verdict(record)
    assert "σ = 0.130 eV = 5.0 kT" in verdict and "σ²/kT = 0.65 eV" in verdict
    assert "±0.092 eV" in verdict  # 0.13 × √(1/4 + 1/4)
    assert "keeps about 1e-11" in verdict and "differs from the reference's" in verdict


def write_run(folder, frames: int = 5):
    """A single-system i-PI output (sim.out, sim.pos_0.xyz) of displaced Ac-Ala3-NHMe at 300 K."""
    molecule = ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz"))
    rng = np.random.default_rng(1)
    header = ["# column   1     --> step", "# column   2     --> time{picosecond}",
              "# column   3     --> temperature{kelvin}", "# column   4     --> potential{electronvolt}"]
    rows = [f"{10 * k:d} {0.005 * k:.4f} 300.0 0.0" for k in range(frames)]
    (folder / "sim.out").write_text("\n".join(header + rows) + "\n")
    with open(folder / "sim.pos_0.xyz", "w") as handle:
        for k in range(frames):
            handle.write(f"{len(molecule)}\n# CELL(abcABC): 0 0 0 90 90 90 Step: {10 * k} Bead: 0 positions{{angstrom}}\n")
            for symbol, xyz in zip(molecule.get_chemical_symbols(),
                                   molecule.positions + rng.normal(scale=0.03, size=molecule.positions.shape)):
                handle.write(f"{symbol} {xyz[0]:.6f} {xyz[1]:.6f} {xyz[2]:.6f}\n")


def test_so3k_analyze_with_a_reference_writes_the_end_states(tmp_path, capsys):
    from so3k_driver.cli.main import main as so3k

    write_run(tmp_path)
    assert so3k(["analyze", str(tmp_path), "--reference", "ala3-xtb", "--model", "ala3-xtb", "--end-states", "1",
                 "--reference-dtype", "float32"]) == 0
    record = json.loads((tmp_path / "analysis" / end_states.JSON).read_text())
    assert record["temperature_K"] == 300.0 and len(record["frames"]) == 2
    assert record["compact_minus_extended_eV"]["sampled"]["model_minus_reference"] == 0.0  # the same model
    compact, extended = record["frames"]
    assert compact["end_to_end_A"] < extended["end_to_end_A"]  # Å
    assert all(f["relaxed_energy_eV"]["model"] < f["energy_eV"]["model"] - 0.1 for f in record["frames"])  # eV
    assert (tmp_path / "analysis" / end_states.PLOT).stat().st_size > 5000
    assert "## End states against ala3-xtb (float32)" in (tmp_path / "analysis" / "summary.md").read_text()
    assert "end states: relaxing 2 frames" in capsys.readouterr().err
    # 5 frames leave too few for the energy-error profile: one line says so, nothing else is written
    assert "Energy-error profile: skipped, 5 frames" in (tmp_path / "analysis" / "summary.md").read_text()
    assert not (tmp_path / "analysis" / "energy_error_profile.json").exists()


def test_without_study_json_the_runs_model_must_be_named(tmp_path, capsys):
    from so3k_driver.cli.main import main as so3k

    write_run(tmp_path)
    assert so3k(["analyze", str(tmp_path), "--reference", "ala3-xtb"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--model" in error[0]
    assert not (tmp_path / "analysis" / "summary.md").exists()  # refused before the analysis ran


def test_model_specs_become_short_axis_labels():
    assert end_states.short_name("so3lr:/data/so3lr/params") == "SO3LR"
    assert end_states.short_name("/models/student_v4_epoch7.so3k") == "student_v4_epoch7"
    assert end_states.short_name("mlff:/runs/ala3/") == "mlff:ala3"
    assert end_states.short_name("ala3-xtb") == "ala3-xtb"


def test_so3k_analyze_splits_the_profile_by_term_when_both_models_are_so3lr_type(tmp_path):
    """The bundled SO3LR-type student against itself in float64: the profile carries the split by term, every
    part is float32 noise, the charges agree, and summary.md has the term table."""
    from so3k_driver.cli.main import main as so3k
    from so3k_driver.sampling.analysis import energy_error_profile

    write_run(tmp_path, frames=10)
    assert so3k(["analyze", str(tmp_path), "--reference", "default", "--model", "default", "--end-states", "0",
                 "--profile-frames", "8", "--burn-in", "0.1"]) == 0
    record = json.loads((tmp_path / "analysis" / energy_error_profile.JSON).read_text())
    assert record["frames"] == 8 and list(record["terms"]) == ["electrostatics", "dispersion", "local"]
    assert 0 < record["charge_rmse_e"] < 1e-5  # e: float32 against float64
    for part in record["terms"].values():
        assert part["error_rms_eV"] < 1e-3  # eV
    summary = (tmp_path / "analysis" / "summary.md").read_text()
    assert "### Which term the error is in" in summary and "| compact − extended |" in summary
