"""Vibrational spectra (sampling/analysis/spectrum.py): known harmonic signals peak where they
should, the spectrum is normalised and in cm^-1, and `so3k analyze` of a real i-PI NVE run writes
spectrum.json."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from so3k_driver.sampling.analysis import spectrum

REPO = Path(__file__).resolve().parents[2]
INPUTS = REPO / "ipi_inputs"
C_CM_PER_FS = 2.99792458e-5
DT_FS = 0.5
FRAMES = 4000  # 2 ps: resolution 1/(F Δt c) = 16.7 cm^-1
WAVENUMBERS = (1000.0, 3000.0)  # cm^-1


def harmonic_positions(frames=FRAMES + 2, dt_fs=DT_FS):
    """Two atoms (masses 12 and 1 Da) oscillating along x and y at 1000 and 3000 cm^-1 with equal
    energy in each mode (amplitude ∝ 1/(ω √m)); positions (F, 2, 3) Å."""
    t = np.arange(frames) * dt_fs
    masses = np.array([12.0, 1.0])
    positions = np.zeros((frames, 2, 3))
    positions[:, 1, 0] = 1.1  # a bond along x: atom 1 moves along x (stretch) and y (bend)
    phases = (0.3, 1.7)
    for axis, (wavenumber, phase) in enumerate(zip(WAVENUMBERS, phases)):
        omega = 2 * np.pi * C_CM_PER_FS * wavenumber  # rad/fs
        for atom, mass in enumerate(masses):
            sign = 1.0 if atom else -1.0
            positions[:, atom, axis] += sign * 0.01 / (omega * np.sqrt(mass)) * np.sin(omega * t + phase)
    return positions, masses


def harmonic_velocities(frames=FRAMES, dt_fs=DT_FS):
    """The analytic velocities (Å/fs) of harmonic_positions at frames 1..frames (the central-difference frames)."""
    t = np.arange(1, frames + 1) * dt_fs
    masses = np.array([12.0, 1.0])
    velocities = np.zeros((frames, 2, 3))
    for axis, (wavenumber, phase) in enumerate(zip(WAVENUMBERS, (0.3, 1.7))):
        omega = 2 * np.pi * C_CM_PER_FS * wavenumber
        for atom, mass in enumerate(masses):
            sign = 1.0 if atom else -1.0
            velocities[:, atom, axis] += sign * 0.01 / np.sqrt(mass) * np.cos(omega * t + phase)
    return velocities, masses


@pytest.mark.parametrize("source", ["velocities", "positions"])
def test_two_harmonic_modes_peak_at_their_wavenumbers(source):
    if source == "velocities":
        velocities, masses = harmonic_velocities()
    else:
        positions, masses = harmonic_positions()
        velocities = spectrum.velocities_from_positions(positions, DT_FS)
    result = spectrum.vdos([velocities], masses, DT_FS, symbols=["C", "H"])
    assert result.resolution_cm1 == pytest.approx(1 / (FRAMES * DT_FS * C_CM_PER_FS))
    assert result.resolution_cm1 == pytest.approx(16.68, abs=0.01)
    peaks = spectrum.find_peaks(result.frequency_cm1, result.intensity, min_frequency_cm1=2 * result.resolution_cm1)
    assert len(peaks) == 2
    np.testing.assert_allclose(peaks, WAVENUMBERS, atol=result.resolution_cm1)
    # Equal energy in both modes: equal areas (central differences lose a little at 3000 cm^-1).
    areas = [result.intensity[abs(result.frequency_cm1 - w) < 5 * result.resolution_cm1].sum() * result.spacing_cm1
             for w in WAVENUMBERS]
    np.testing.assert_allclose(areas, [0.5, 0.5], atol=0.03)


def test_spectrum_is_normalised_in_wavenumbers_with_partials_that_add_up():
    velocities, masses = harmonic_velocities()
    result = spectrum.vdos([velocities, velocities[::-1]], masses, DT_FS, symbols=["C", "H"])
    assert result.intensity.sum() * result.spacing_cm1 == pytest.approx(1.0)
    assert result.frequency_cm1[0] == 0.0
    assert result.frequency_cm1[-1] == pytest.approx(result.nyquist_cm1)
    assert result.nyquist_cm1 == pytest.approx(1 / (2 * DT_FS * C_CM_PER_FS))  # 33356 cm^-1 at 0.5 fs
    np.testing.assert_allclose(result.partial["C"] + result.partial["H"], result.intensity)
    # Equal kinetic energy per atom in each mode by construction: carbon and hydrogen share equally.
    assert result.partial["C"].sum() == pytest.approx(result.partial["H"].sum(), rel=1e-6)


def test_bond_stretch_spectrum_sees_only_the_stretch():
    """The bond lies along x: its stretch is the 1000 cm^-1 mode; the 3000 cm^-1 y motion is a bend."""
    positions, masses = harmonic_positions()
    velocities, _ = harmonic_velocities()
    bonds = spectrum.bonds_by_type(["C", "H"], positions[0])
    assert list(bonds) == ["C-H"] and bonds["C-H"].tolist() == [[0, 1]]
    for stretch in (spectrum.bond_stretch_spectra([positions], bonds, DT_FS)["C-H"],
                    spectrum.bond_stretch_spectra([positions[1:-1]], bonds, DT_FS, velocities=[velocities])["C-H"]):
        assert stretch.intensity.sum() * stretch.spacing_cm1 == pytest.approx(1.0)
        peak = stretch.frequency_cm1[np.argmax(stretch.intensity)]
        assert abs(peak - 1000.0) < stretch.resolution_cm1


def test_bad_inputs_name_the_received_value():
    with pytest.raises(ValueError, match="-1"):
        spectrum.vdos([np.zeros((10, 2, 3))], [1.0, 1.0], -1)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        spectrum.vdos([np.zeros((10, 2, 3))], [1.0, 1.0, 1.0], 0.5)


def test_coarse_frames_give_a_reason_not_an_aliased_spectrum(tmp_path):
    """Positions every 5 fs resolve only up to 3336 cm^-1: no spectrum, and the summary line says why."""
    (tmp_path / "sim.out").write_text("# column   1     --> step : step\n# column   2     --> time{picosecond} : time\n"
                                      + "".join(f"{k} {k * 0.0005}\n" for k in range(0, 101)))
    frames = "".join(f"2\n# CELL(abcABC): 1 1 1 90 90 90 Step: {k} Bead: 0 positions{{angstrom}}\n"
                     f"C 0 0 0\nH 1.1 0 {0.01 * np.sin(k)}\n" for k in range(0, 101, 10))
    (tmp_path / "sim.pos_0.xyz").write_text(frames)
    line = spectrum.write_spectrum(tmp_path, tmp_path)
    assert line.startswith("no spectrum") and "5 fs" in line and "3336" in line
    assert not (tmp_path / "spectrum.json").exists()


def test_analyze_of_a_real_nve_run_writes_the_spectrum(tmp_path):
    """ipi_inputs/nve_spectrum.xml, 40 steps with the bundled model through so3k run, then so3k analyze."""
    run = subprocess.run([sys.executable, "-m", "so3k_driver.cli", "run", str(INPUTS / "nve_spectrum.xml"),
                          "--model", "ala3-xtb", "--steps", "40", "--workdir", str(tmp_path),
                          "--address", f"spectrum-test-{tmp_path.name}"[-40:], "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    analysis = subprocess.run([sys.executable, "-m", "so3k_driver.cli", "analyze", str(tmp_path)],
                              capture_output=True, text=True, timeout=300)
    assert analysis.returncode == 0, analysis.stderr
    assert "Vibrational spectrum (VDOS from velocities, 41 frames every 0.5 fs" in analysis.stdout
    record = json.loads((tmp_path / "analysis" / "spectrum.json").read_text())
    assert record["source"] == "velocities" and record["frames"] == 41 and record["time_step_fs"] == pytest.approx(0.5)
    assert record["resolution_cm1"] == pytest.approx(1 / (41 * 0.5 * C_CM_PER_FS))
    assert isinstance(record["peaks_cm1"], list)
    assert record["bond_stretch"]["C-H"]["bonds"] == 18 and record["bond_stretch"]["N-H"]["bonds"] == 4
    assert record["bond_stretch"]["C-O"]["bonds"] == 4  # the four carbonyls of Ac-Ala3-NHMe
    assert (tmp_path / "analysis" / "spectrum.png").stat().st_size > 10_000
