"""Hessians, normal modes and harmonic free energies (so3k_driver.evaluation.vibrations)."""

import numpy as np
import pytest
from ase import units as ase_units

from so3k_driver.evaluation import vibrations
from so3k_driver.evaluation.potential import Potential


def spring_hessian(k: float) -> np.ndarray:
    """Two atoms on the x axis joined by a spring of k eV/Å² (6, 6)."""
    block = np.zeros((3, 3))
    block[0, 0] = k
    return np.block([[block, -block], [-block, block]])


def test_a_spring_vibrates_at_sqrt_k_over_mu():
    k, masses = 36.0, np.array([1.008, 15.999])
    modes = vibrations.normal_modes(spring_hessian(k), np.array([[0.0, 0, 0], [1.0, 0, 0]]), masses)
    # Linear: 3N - 5 = 1 internal mode; an independent conversion through ASE's units.
    mu = masses.prod() / masses.sum()
    omega_si = np.sqrt(k * ase_units._e * 1e20 / (mu * ase_units._amu))
    assert modes.frequencies_cm1.shape == (1,)
    assert modes.frequencies_cm1[0] == pytest.approx(omega_si / (2 * np.pi * ase_units._c * 100), rel=1e-9)
    assert modes.rigid_body_leak_cm1 < 1e-3  # sqrt of a rounding-level eigenvalue


def test_a_negative_curvature_is_an_imaginary_mode():
    modes = vibrations.normal_modes(spring_hessian(-4.0), np.array([[0.0, 0, 0], [1.2, 0, 0]]), np.ones(2))
    assert modes.imaginary_count == 1 and modes.frequencies_cm1[0] < 0


def test_hessian_matches_ase_vibrations_and_has_six_rigid_modes(tmp_path):
    """Central differences of the forces, batched, against ASE's Vibrations one structure at a time."""
    from ase.io import read
    from ase.vibrations import Vibrations

    from so3k_driver.evaluation.ase_calculator import SO3kCalculator

    atoms = read("so3k_driver/data/Ac-Ala3-NHMe_ext.xyz")
    potential = Potential.load("ala3-xtb", dtype="float64")
    hessian = vibrations.finite_difference_hessian(potential, atoms.numbers, atoms.positions,
                                                   structures_per_call=50)
    reference = atoms.copy()
    reference.calc = SO3kCalculator(potential=potential)
    vib = Vibrations(reference, name=str(tmp_path / "vib"), delta=0.01, nfree=2)
    vib.run()
    ase_hessian = vib.get_vibrations().get_hessian_2d()
    assert np.abs(hessian - ase_hessian).max() < 1e-8 * np.abs(ase_hessian).max()
    assert np.allclose(hessian, hessian.T)

    masses = vibrations.atomic_masses(atoms.numbers)
    modes = vibrations.normal_modes(hessian, atoms.positions, masses)
    assert modes.frequencies_cm1.shape == (3 * len(atoms) - 6,)
    # Mass-weighted modes are orthonormal and free of rigid translations and rotations.
    assert np.allclose(modes.modes.T @ modes.modes, np.eye(modes.modes.shape[1]), atol=1e-10)
    assert np.abs(vibrations.rigid_body_vectors(atoms.positions, masses).T @ modes.modes).max() < 1e-10
    # The highest internal frequencies are ASE's (which keeps the rigid modes in, near zero here).
    ase_frequencies = np.sort(vib.get_frequencies().real)
    assert np.allclose(modes.frequencies_cm1[-20:], ase_frequencies[-20:], rtol=1e-6)
    # A rigid translation costs nothing, up to the finite-difference error of the symmetrised matrix.
    assert np.abs(hessian @ np.ones(3 * len(atoms))).max() < 1e-3 * np.abs(hessian).max()


def test_hessian_rejects_bad_input():
    potential = None  # not reached
    with pytest.raises(ValueError, match="positions must be"):
        vibrations.finite_difference_hessian(potential, [1, 1], np.zeros((3, 3)))
    with pytest.raises(ValueError, match="step must be positive"):
        vibrations.finite_difference_hessian(potential, [1, 1], np.zeros((2, 3)), step=0.0)


def test_quantum_free_energy_of_one_mode():
    frequency, temperature = 1500.0, 300.0
    quantum = ase_units._hbar * 2 * np.pi * ase_units._c * 100 * frequency / ase_units._e  # eV
    kt = ase_units.kB * temperature
    expected = quantum / 2 + kt * np.log(1 - np.exp(-quantum / kt))
    assert vibrations.harmonic_free_energy([frequency], temperature) == pytest.approx(expected, rel=1e-6)
    assert vibrations.zero_point_energy([frequency, frequency]) == pytest.approx(quantum, rel=1e-6)


def test_quantum_free_energy_approaches_the_classical_one_for_soft_modes():
    frequencies, temperature = np.array([5.0, 20.0, 40.0]), 1000.0
    quantum = vibrations.harmonic_free_energy(frequencies, temperature)
    classical = vibrations.harmonic_free_energy(frequencies, temperature, quantum=False)
    # Leading correction (hbar omega)^2 / (24 kT) per mode.
    hw = ase_units._hbar * 2 * np.pi * ase_units._c * 100 * frequencies / ase_units._e
    assert quantum - classical == pytest.approx(np.sum(hw ** 2) / (24 * ase_units.kB * temperature), rel=1e-3)


def test_classical_free_energy_differences_do_not_depend_on_masses():
    """What MD with heavier hydrogens samples: conformer differences unchanged by the masses."""
    rng = np.random.default_rng(4)
    positions = [rng.normal(size=(5, 3)) for _ in range(2)]
    hessians = []
    for _ in range(2):
        a = rng.normal(size=(15, 15))
        hessians.append(a @ a.T + 15 * np.eye(15))
    light, heavy = np.array([12.0, 1.0, 1.0, 1.0, 1.0]), np.array([12.0, 4.0, 4.0, 4.0, 4.0])

    # Hessians that are exactly rigid-body invariant at their geometry, the same for both mass sets:
    # projected in Cartesian space, where the rigid displacements do not depend on the masses.
    invariant = []
    for h, x in zip(hessians, positions):
        rigid = vibrations.rigid_body_vectors(x, np.ones(5))
        projector = np.eye(15) - rigid @ rigid.T
        invariant.append(projector @ h @ projector)

    def difference(masses):
        free = []
        for h, x in zip(invariant, positions):
            f = vibrations.normal_modes(h, x, masses).frequencies_cm1
            free.append(vibrations.harmonic_free_energy(f, 300.0, quantum=False)
                        + vibrations.rotational_free_energy(x, masses, 300.0))
        return free[1] - free[0]

    assert difference(heavy) == pytest.approx(difference(light), abs=1e-9)


def test_rotational_free_energy_scales_with_the_moments():
    rng = np.random.default_rng(1)
    positions, masses = rng.normal(size=(6, 3)), rng.uniform(1, 16, size=6)
    kt = ase_units.kB * 300.0
    # Moments scale as length^2, the partition function as sqrt(I1 I2 I3): F falls by 3 kT ln(scale).
    difference = (vibrations.rotational_free_energy(2.0 * positions, masses, 300.0)
                  - vibrations.rotational_free_energy(positions, masses, 300.0))
    assert difference == pytest.approx(-3 * kt * np.log(2.0), rel=1e-12)


def test_rotational_free_energy_of_water_matches_the_rigid_rotor():
    """Against the textbook partition function in SI units (symmetry number 1)."""
    positions = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])
    masses = np.array([15.999, 1.008, 1.008])
    moments_si = vibrations.principal_moments(positions, masses) * ase_units._amu * 1e-20
    kt_si = ase_units._k * 300.0
    partition = np.sqrt(np.pi * np.prod(moments_si)) * (8 * np.pi ** 2 * kt_si / ase_units._hplanck ** 2) ** 1.5
    expected = -ase_units.kB * 300.0 * np.log(partition)
    assert vibrations.rotational_free_energy(positions, masses, 300.0) == pytest.approx(expected, rel=1e-6)


def test_free_energies_refuse_imaginary_modes_and_bad_temperatures():
    with pytest.raises(ValueError, match="1 at or below zero"):
        vibrations.harmonic_free_energy([-30.0, 100.0], 300.0)
    with pytest.raises(ValueError, match="temperature must be positive"):
        vibrations.harmonic_free_energy([100.0], 0.0)
    with pytest.raises(ValueError, match="non-linear"):
        vibrations.rotational_free_energy(np.array([[0.0, 0, 0], [1.0, 0, 0]]), np.ones(2), 300.0)


def grimme_quasi_rrho_si(frequency_cm1: float, temperature: float) -> float:
    """Grimme's quasi-RRHO free energy (eV) of one mode, written in SI units from the paper's formulas
    (Chem. Eur. J. 18, 9955 (2012), eqs. 3-6): an independent path through the unit conversions."""
    h, k, c = 2 * np.pi * ase_units._hbar, ase_units._k, ase_units._c
    nu = c * 100 * frequency_cm1  # Hz
    x = h * nu / (k * temperature)
    s_vib = k * (x / np.expm1(x) - np.log(1 - np.exp(-x)))
    mu = h / (8 * np.pi**2 * nu)
    b_av = 1e-44
    mu_eff = mu * b_av / (mu + b_av)
    s_rot = k * (0.5 + np.log(np.sqrt(8 * np.pi**3 * mu_eff * k * temperature / h**2)))
    w = 1 / (1 + (100.0 / frequency_cm1) ** 4)
    energy = h * nu * (0.5 + 1 / np.expm1(x))
    return (energy - temperature * (w * s_vib + (1 - w) * s_rot)) / ase_units._e


@pytest.mark.parametrize("frequency", [3.0, 30.0, 100.0, 300.0])
def test_quasi_rrho_matches_grimmes_formulas_in_si_units(frequency):
    assert vibrations.quasi_rrho_free_energy([frequency], 298.15) == pytest.approx(
        grimme_quasi_rrho_si(frequency, 298.15), abs=2e-6)


@pytest.mark.parametrize("quantum", [True, False])
def test_quasi_rrho_keeps_stiff_modes_harmonic_and_bounds_soft_ones(quantum):
    stiff = [800.0, 1500.0, 3000.0]
    assert vibrations.quasi_rrho_free_energy(stiff, 300.0, quantum=quantum) == pytest.approx(
        vibrations.harmonic_free_energy(stiff, 300.0, quantum=quantum), abs=1e-5)
    # A tenfold softer mode lowers the harmonic F by kT ln 10 (60 meV at 300 K), a rotor's by at most half
    # that (its moment grows as 1/omega, its F as -kT/2 ln moment), and by nothing once its moment reaches
    # the cap B_av (602 amu Å², a 0.03 cm^-1 mode).
    kt = ase_units.kB * 300.0
    harmonic = [vibrations.harmonic_free_energy([f], 300.0, quantum=quantum) for f in (0.1, 1.0)]
    quasi = [vibrations.quasi_rrho_free_energy([f], 300.0, quantum=quantum) for f in (0.1, 1.0, 1e-4, 1e-3)]
    assert harmonic[1] - harmonic[0] == pytest.approx(kt * np.log(10), rel=1e-3)
    assert 0.25 * kt * np.log(10) < quasi[1] - quasi[0] < 0.5 * kt * np.log(10)
    assert 0 < quasi[3] - quasi[2] < 0.002


def test_quasi_rrho_refuses_bad_input():
    with pytest.raises(ValueError, match="at or below zero"):
        vibrations.quasi_rrho_free_energy([-5.0, 100.0], 300.0)
    with pytest.raises(ValueError, match="temperature must be positive"):
        vibrations.quasi_rrho_free_energy([100.0], -1.0)
    with pytest.raises(ValueError, match="cutoff_cm1 and average_moment_amu_a2 must be positive, got 0"):
        vibrations.quasi_rrho_free_energy([100.0], 300.0, cutoff_cm1=0)
