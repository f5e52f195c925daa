"""``so3k minima``: deduplication of minima, the end-to-end command and its one-line errors."""

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest

from so3k_driver.cli.main import main
from so3k_driver.evaluation import vibrations
from so3k_driver.sampling.minima import DuplicateTolerances, distance_fingerprints, distinct_minima

DATA = Path(__file__).resolve().parents[2] / "so3k_driver" / "data"
TOLERANCES = DuplicateTolerances(energy=0.01, angle=10.0, distance=0.02)


def test_torsion_fingerprints_wrap_around_and_energy_decides_too():
    energies = np.array([-1.000, -0.995, -1.002, -0.5])
    torsions = np.array([[179.0, -60.0], [-178.0, -62.0], [60.0, -60.0], [179.0, -60.0]])
    # 0 and 1 are one minimum (179° and -178° are 3° apart); 2 differs in phi; 3 in energy
    groups = distinct_minima(energies, torsions, angles=True, tolerances=TOLERANCES)
    assert groups == [[2], [0, 1], [3]]


def test_distance_fingerprints_ignore_rotation_and_atom_order():
    rng = np.random.default_rng(0)
    positions = rng.normal(scale=2.0, size=(1, 6, 3))
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    moved = (positions[0] @ rotation.T + 1.5)[rng.permutation(6)][None]
    other = positions + rng.normal(scale=0.3, size=positions.shape)
    fingerprints = distance_fingerprints(np.concatenate([positions, moved, other]))
    groups = distinct_minima(np.zeros(3), fingerprints, angles=False, tolerances=TOLERANCES)
    assert groups == [[0, 1], [2]]


@pytest.fixture(scope="module")
def minima_run(tmp_path_factory):
    """The command on four Ac-Ala3-NHMe frames: an MD frame twice, a slightly displaced copy of it,
    and another MD frame."""
    folder = tmp_path_factory.mktemp("minima")
    first, other = (ase.io.read(DATA / "ala3_xtb_validation.xyz", index=i) for i in (0, 5))
    displaced = first.copy()
    displaced.positions += np.random.default_rng(1).normal(scale=0.02, size=displaced.positions.shape)
    ase.io.write(folder / "a.xyz", [first, first, displaced])
    ase.io.write(folder / "b.extxyz", [other])
    out = folder / "out"
    code = main(["minima", "ala3-xtb", str(folder / "a.xyz"), str(folder / "b.extxyz"), "--out", str(out),
                 "--structures-per-call", "2", "--quiet"])
    return code, out, folder


def test_the_command_writes_summary_and_sorted_minima(minima_run):
    code, out, _ = minima_run
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 4 and summary["converged"] == 4
    assert summary["optimizer"] == "lbfgs" and summary["settings"]["memory"] == 20  # the default optimiser
    assert 0 < summary["steps_mean"] <= summary["steps_max"]
    # the frame given twice and its displaced copy are one minimum, counted once
    assert summary["distinct_minima"] == 2
    assert sorted(summary["frames_per_minimum"]) == [1, 3]
    assert summary["wall_time_s"] > 0 and summary["fmax_eV_per_A"] == 0.05
    assert summary["energies_eV"] == sorted(summary["energies_eV"]) and summary["relative_energies_eV"][0] == 0
    assert len(summary["phi_deg"][0]) == len(summary["psi_deg"][0]) == 3  # Ala3: three residues
    minima = ase.io.read(out / "minima.extxyz", index=":")
    assert len(minima) == 2
    energies = [atoms.get_potential_energy() for atoms in minima]
    np.testing.assert_allclose(energies, summary["energies_eV"], atol=1e-6)
    assert all(np.linalg.norm(atoms.get_forces(), axis=1).max() < 0.05 for atoms in minima)
    for plot in ("relative_energies.png", "ramachandran.png"):
        assert 1000 < (out / plot).stat().st_size < 300_000


@pytest.mark.slow  # a second so3k minima run (~10 s); --optimizer fire's parsing is in the bad-settings test below
def test_fire_on_request_finds_the_same_minima(minima_run, capsys):
    _, lbfgs_out, folder = minima_run
    out = folder / "fire"
    code = main(["minima", "ala3-xtb", str(folder / "a.xyz"), str(folder / "b.extxyz"), "--out", str(out),
                 "--structures-per-call", "2", "--quiet", "--optimizer", "fire"])
    assert code == 0 and "converged with fire" in capsys.readouterr().out
    fire, lbfgs = (json.loads((path / "summary.json").read_text()) for path in (out, lbfgs_out))
    assert fire["optimizer"] == "fire" and "memory" not in fire["settings"]
    assert fire["distinct_minima"] == lbfgs["distinct_minima"] == 2
    assert sorted(fire["frames_per_minimum"]) == sorted(lbfgs["frames_per_minimum"])


@pytest.mark.parametrize("options, words", [
    (["--max-step", "0"], ("max_step", "0.0")),
    (["--optimizer", "fire", "--fmax", "-1"], ("fmax", "-1.0")),
    (["--structures-per-call", "0"], ("structures_per_call", "got 0")),
    (["--min-distance", "-1"], ("min_distance", "-1.0")),
    (["--harmonic", "0"], ("harmonic temperatures", "0.0")),
    (["--harmonic", "300,x"], ("temperatures must be", "300,x")),
    (["--harmonic", "300", "--harmonic-minima", "0"], ("harmonic free energies", "got 0")),
])
def test_bad_settings_are_one_line_and_exit_2(tmp_path, capsys, options, words):
    path = tmp_path / "frames.xyz"
    ase.io.write(path, ase.io.read(DATA / "ala3_xtb_validation.xyz", index=0))
    code = main(["minima", "ala3-xtb", str(path), "--out", str(tmp_path / "out"), *options])
    error = capsys.readouterr().err.strip()
    assert code == 2 and len(error.splitlines()) == 1 and error.startswith("so3k minima: error:")
    assert all(word in error for word in words), error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, message", [
    (None, "not found"),
    ("", "no frames"),
    ("this is not\na structure\n", "cannot read"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "frames.xyz"
    if content is not None:
        path.write_text(content)
    code = main(["minima", "ala3-xtb", str(path), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert len(error.splitlines()) == 1 and error.startswith("so3k minima: error:") and message in error
    assert not (tmp_path / "out").exists()


def test_harmonic_free_energies_of_the_minima(tmp_path, capsys):
    """--harmonic: Hessians at tightly converged float64 minima, no imaginary modes, F = E + F_vib + F_rot."""
    path = tmp_path / "frames.xyz"
    ase.io.write(path, [ase.io.read(DATA / "ala3_xtb_validation.xyz", index=i) for i in (0, 9, 19)])
    out = tmp_path / "out"
    code = main(["minima", "ala3-xtb", str(path), "--out", str(out), "--dtype", "float64", "--fmax", "0.002",
                 "--max-steps", "3000", "--harmonic", "300,1000", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "harmonic free energy at 300 K: lowest for minimum" in printed
    summary = json.loads((out / "summary.json").read_text())
    harmonic = summary["harmonic"]
    assert summary["distinct_minima"] == 2 and harmonic["minima_computed"] == 2
    assert harmonic["temperatures_K"] == [300.0, 1000.0] and harmonic["with_imaginary_modes"] == 0
    for k, entry in enumerate(harmonic["minima"]):
        assert entry["energy_eV"] == pytest.approx(summary["energies_eV"][k])
        assert entry["imaginary_modes"] == 0 and 0 < entry["frequencies_cm1"][0] < 200
        assert len(entry["frequencies_cm1"]) == 3 * 42 - 6
        # Rotation is nearly free at a minimum (a few cm^-1 from the residual torque at fmax 0.002 eV/Å;
        # rigid vectors without mass weighting would leak hundreds).
        assert entry["rigid_body_leak_cm1"] < 20.0
        assert 3.0 < entry["zero_point_energy_eV"] < 20.0  # 42 atoms: ~0.1-0.3 eV per mode scale
        for t in ("300", "1000"):
            assert harmonic["free_energy_eV"][t][k] == pytest.approx(
                entry["energy_eV"] + entry["vibrational_quantum_eV"][t] + entry["rotational_eV"][t])
            assert harmonic["free_energy_qrrho_eV"][t][k] == pytest.approx(
                entry["energy_eV"] + entry["vibrational_quantum_qrrho_eV"][t] + entry["rotational_eV"][t])
            # The stored wavenumbers reproduce both F, and quasi-RRHO raises F (a capped rotor's entropy is
            # below a soft oscillator's).
            assert entry["vibrational_quantum_eV"][t] == pytest.approx(
                vibrations.harmonic_free_energy(entry["frequencies_cm1"], float(t)), abs=1e-5)
            assert entry["vibrational_quantum_qrrho_eV"][t] == pytest.approx(
                vibrations.quasi_rrho_free_energy(entry["frequencies_cm1"], float(t)), abs=1e-5)
            assert entry["vibrational_quantum_qrrho_eV"][t] > entry["vibrational_quantum_eV"][t]
        # Entropy: the free energy falls with temperature.
        assert entry["free_energy_eV"]["1000"] < entry["free_energy_eV"]["300"]
    for t in ("300", "1000"):
        for suffix in ("", "_qrrho"):
            relative = harmonic[f"relative_free_energy{suffix}_eV"][t]
            assert min(relative) == 0.0 and relative[harmonic[f"lowest_free_energy{suffix}_minimum"][t]] == 0.0
    minima = ase.io.read(out / "minima.extxyz", index=":")
    assert [m.info["free_energy_300K_eV"] for m in minima] == pytest.approx(harmonic["free_energy_eV"]["300"])
    assert "free_energies.png" in summary["plots"] and (out / "free_energies.png").stat().st_size > 1000

