"""Harmonic vibrations of a gas-phase structure: Hessian, normal modes and harmonic free energies.

The Hessian comes from central finite differences of the forces of any :class:`Potential`, with all
6N displaced structures evaluated in batched calls:

    H_ij = -(F_j(x + h e_i) - F_j(x - h e_i)) / (2 h),   then symmetrised, (3N, 3N) eV/Å²

(ASE's ``Vibrations`` with ``nfree=2`` does the same one structure at a time). Normal modes are the
eigenvectors of the mass-weighted Hessian M^-1/2 H M^-1/2 restricted to the 3N - 6 (3N - 5 for a
linear molecule) internal coordinates orthogonal to rigid translations and rotations (Eckart
conditions at the given geometry), so the six rigid-body modes are exactly absent rather than
small numbers that depend on the residual forces. Frequencies are wavenumbers in cm^-1; an
imaginary frequency (negative eigenvalue: not a minimum) is returned as a negative number.

Harmonic free energies of the vibrations, per structure, in eV (omega_k = 2 pi c nu_k):

    quantum:    F = sum_k [ hbar omega_k / 2 + kT ln(1 - exp(-hbar omega_k / kT)) ]
    classical:  F = sum_k kT ln(hbar omega_k / kT)

Quasi-rigid-rotor-harmonic-oscillator (quasi-RRHO; Grimme, Chem. Eur. J. 18, 9955 (2012)): below ~100
cm^-1 a harmonic mode's entropy k ln(kT / hbar omega) grows without bound as omega -> 0 (F falls by kT ln 10,
60 meV at 300 K, per decade), so the 1-3 cm^-1 modes of a floppy chain, which move with where a minimiser
stops, move F by ~20 meV between two minimisations (Ac-Ala15-NHMe's extended chain). Their entropy is interpolated towards that of a free rotor whose moment of
inertia mu = hbar / (2 omega) is capped by an average molecular moment B_av = 1e-44 kg m² (602 amu Å²);
the rotor's F falls half as fast per decade, and not at all once mu nears B_av (below ~0.03 cm^-1):

    S_k = w_k S_vib,k + (1 - w_k) S_rot,k,   w_k = 1 / (1 + (omega_0 / omega_k)^4),  omega_0 = 100 cm^-1
    S_rot,k / k = 1/2 + ln sqrt(2 pi mu'_k kT) / hbar,   mu'_k = mu_k B_av / (mu_k + B_av)
    F = sum_k [ U_vib,k - T S_k ]

with the harmonic U_vib and S_vib (quantum or classical), so modes well above omega_0 keep their harmonic
F; only the entropy is interpolated, as in Grimme's scheme.

The classical form is what classical MD samples (i-PI with one bead): its differences between two
conformers of one molecule do not depend on the masses (the product of the frequencies is
det(H') / det(M) over internal coordinates, and det(M) is the same), so runs with heavier hydrogens
compare with it. The rotational free energy of a classical rigid rotor, F = -kT ln(sqrt(pi I_1 I_2
I_3) (2 kT / hbar²)^(3/2)) with symmetry number 1, adds the conformers' different shapes.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..units import (AMU_ANGSTROM2_IN_KG_M2, BOLTZMANN_EV_PER_K, EV_IN_AMU_ANGSTROM2_PER_PS2, HBAR_EV_PS,
                     SPEED_OF_LIGHT_CM_PER_PS)

DEFAULT_STEP_A = 0.01
DEFAULT_STRUCTURES_PER_CALL = 64
# Grimme's quasi-RRHO (module docstring): the wavenumber where a mode is half oscillator, half rotor, and
# the average molecular moment of inertia that caps a soft mode's rotor moment (1e-44 kg m²).
QUASI_RRHO_CUTOFF_CM1 = 100.0
QUASI_RRHO_AVERAGE_MOMENT_AMU_A2 = 1e-44 / AMU_ANGSTROM2_IN_KG_M2


def atomic_masses(numbers) -> np.ndarray:
    """Standard atomic masses (amu, ASE's table) of the elements ``numbers`` (N,)."""
    from ase.data import atomic_masses as table

    return np.asarray(table[np.asarray(numbers, dtype=int)], dtype=float)


def finite_difference_hessian(potential, numbers, positions, *, step: float = DEFAULT_STEP_A,
                              structures_per_call: int = DEFAULT_STRUCTURES_PER_CALL,
                              progress: Callable[[int, int], None] | None = None, **evaluate_options) -> np.ndarray:
    """Hessian (3N, 3N) eV/Å² of one gas-phase structure from central differences of the forces.

    numbers (N,), positions (N, 3) Å; step h in Å (ASE's default 0.01); the 6N displaced structures
    go to ``potential.evaluate`` ``structures_per_call`` at a time, and ``progress(done, total)`` is
    called after each call; ``evaluate_options`` (total_charge, unpaired_electrons) go to every call.
    The result is symmetrised (its antisymmetric part is finite-difference
    and rounding error); how much error is left shows in the rigid-body check of :func:`normal_modes`.
    """
    numbers = np.asarray(numbers, dtype=int)
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 2 or positions.shape != (len(numbers), 3):
        raise ValueError(f"positions must be (N, 3) for N = {len(numbers)} atoms, got shape {positions.shape}")
    if not step > 0:
        raise ValueError(f"step must be positive (Å), got {step}")
    if structures_per_call < 1:
        raise ValueError(f"structures_per_call must be >= 1, got {structures_per_call}")
    n = 3 * len(numbers)
    # Row 2i is +h along coordinate i, row 2i + 1 is -h.
    displacements = np.zeros((2 * n, n))
    displacements[0::2] = step * np.eye(n)
    displacements[1::2] = -step * np.eye(n)
    forces = np.empty((2 * n, n))
    for first in range(0, 2 * n, structures_per_call):
        chunk = displacements[first:first + structures_per_call]
        displaced = positions[None] + chunk.reshape(len(chunk), -1, 3)
        results = potential.evaluate(np.broadcast_to(numbers, (len(chunk), len(numbers))), displaced,
                                     **evaluate_options)
        forces[first:first + len(chunk)] = results.forces.reshape(len(chunk), n)
        if progress is not None:
            progress(first + len(chunk), 2 * n)
    hessian = -(forces[0::2] - forces[1::2]) / (2.0 * step)
    return 0.5 * (hessian + hessian.T)


def _centred(positions, masses) -> tuple[np.ndarray, np.ndarray]:
    """(positions relative to the centre of mass (N, 3) Å, masses (N,) amu) as float arrays."""
    positions = np.asarray(positions, dtype=float)
    masses = np.asarray(masses, dtype=float)
    return positions - (masses[:, None] * positions).sum(0) / masses.sum(), masses


def rigid_body_vectors(positions, masses) -> np.ndarray:
    """Orthonormal mass-weighted translations and rotations at this geometry, (3N, 6) or (3N, 5) if linear."""
    centred, masses = _centred(positions, masses)
    sqrt_m = np.sqrt(masses)[:, None]
    vectors = []
    for axis in np.eye(3):
        vectors.append((sqrt_m * axis[None, :]).ravel())
        vectors.append((sqrt_m * np.cross(axis[None, :], centred)).ravel())
    u, s, _ = np.linalg.svd(np.stack(vectors, axis=1), full_matrices=False)
    return u[:, s > 1e-6 * s.max()]


@dataclasses.dataclass
class NormalModes:
    """Harmonic normal modes of one structure.

    frequencies_cm1: (K,) wavenumbers in cm^-1, ascending, imaginary ones negative; K = 3N - 6
    (3N - 5 linear). modes: (3N, K) orthonormal mass-weighted eigenvectors (columns).
    rigid_body_leak_cm1: the largest |frequency| the Hessian gives to a rigid translation or rotation;
    zero for an exact Hessian at any geometry for translations and at a minimum for rotations, so it
    measures residual forces and finite-difference error on the scale of the soft modes.
    """

    frequencies_cm1: np.ndarray
    modes: np.ndarray
    rigid_body_leak_cm1: float

    @property
    def imaginary_count(self) -> int:
        return int((self.frequencies_cm1 < 0).sum())


def _wavenumbers(eigenvalues: np.ndarray) -> np.ndarray:
    """Eigenvalues of the mass-weighted Hessian (eV / (Å² amu)) to signed wavenumbers (cm^-1)."""
    omega = np.sqrt(np.abs(eigenvalues) * EV_IN_AMU_ANGSTROM2_PER_PS2)  # rad/ps
    return np.sign(eigenvalues) * omega / (2.0 * np.pi * SPEED_OF_LIGHT_CM_PER_PS)


def normal_modes(hessian, positions, masses) -> NormalModes:
    """Normal modes of the Hessian (3N, 3N) eV/Å² at positions (N, 3) Å with masses (N,) amu."""
    hessian = np.asarray(hessian, dtype=float)
    masses = np.asarray(masses, dtype=float)
    n = 3 * len(masses)
    if hessian.shape != (n, n):
        raise ValueError(f"hessian must be ({n}, {n}) for {len(masses)} atoms, got shape {hessian.shape}")
    if np.any(masses <= 0):
        raise ValueError(f"masses must be positive (amu), got minimum {masses.min()}")
    inverse_sqrt_m = np.repeat(1.0 / np.sqrt(masses), 3)
    weighted = hessian * inverse_sqrt_m[:, None] * inverse_sqrt_m[None, :]
    rigid = rigid_body_vectors(positions, masses)
    # The internal space: an orthonormal basis of the complement of the rigid-body vectors.
    u, _, _ = np.linalg.svd(rigid, full_matrices=True)
    internal = u[:, rigid.shape[1]:]
    eigenvalues, vectors = np.linalg.eigh(internal.T @ weighted @ internal)
    leak = _wavenumbers(np.linalg.eigvalsh(rigid.T @ weighted @ rigid))
    return NormalModes(frequencies_cm1=_wavenumbers(eigenvalues), modes=internal @ vectors,
                       rigid_body_leak_cm1=float(np.abs(leak).max()))


def _angular_frequencies_ev(frequencies_cm1) -> np.ndarray:
    """hbar omega in eV of real wavenumbers in cm^-1; refuses imaginary or zero ones."""
    frequencies_cm1 = np.asarray(frequencies_cm1, dtype=float)
    if np.any(frequencies_cm1 <= 0):
        bad = frequencies_cm1[frequencies_cm1 <= 0]
        raise ValueError(f"harmonic free energy needs real, positive frequencies; got {len(bad)} at or below "
                         f"zero (lowest {bad.min():.1f} cm^-1): not a minimum, or not converged tightly enough")
    return HBAR_EV_PS * 2.0 * np.pi * SPEED_OF_LIGHT_CM_PER_PS * frequencies_cm1


def zero_point_energy(frequencies_cm1) -> float:
    """sum_k hbar omega_k / 2 (eV) of real, positive wavenumbers (cm^-1)."""
    return float(0.5 * _angular_frequencies_ev(frequencies_cm1).sum())


def harmonic_free_energy(frequencies_cm1, temperature_k: float, *, quantum: bool = True) -> float:
    """Vibrational Helmholtz free energy (eV) of harmonic modes at temperature_k (K); see the module."""
    if not temperature_k > 0:
        raise ValueError(f"temperature must be positive (K), got {temperature_k}")
    quanta = _angular_frequencies_ev(frequencies_cm1)
    kt = BOLTZMANN_EV_PER_K * temperature_k
    if quantum:
        return float(np.sum(0.5 * quanta + kt * np.log1p(-np.exp(-quanta / kt))))
    return float(np.sum(kt * np.log(quanta / kt)))


def quasi_rrho_free_energy(frequencies_cm1, temperature_k: float, *, quantum: bool = True,
                           cutoff_cm1: float = QUASI_RRHO_CUTOFF_CM1,
                           average_moment_amu_a2: float = QUASI_RRHO_AVERAGE_MOMENT_AMU_A2) -> float:
    """Vibrational free energy (eV) at temperature_k (K) with Grimme's quasi-RRHO entropy (module docstring):
    modes well above cutoff_cm1 (cm^-1) as in :func:`harmonic_free_energy`, soft ones towards free rotors
    whose moment is capped by average_moment_amu_a2 (amu Å²)."""
    if not temperature_k > 0:
        raise ValueError(f"temperature must be positive (K), got {temperature_k}")
    if not (cutoff_cm1 > 0 and average_moment_amu_a2 > 0):
        raise ValueError(f"cutoff_cm1 and average_moment_amu_a2 must be positive, got {cutoff_cm1!r} and "
                         f"{average_moment_amu_a2!r}")
    quanta = _angular_frequencies_ev(frequencies_cm1)
    kt = BOLTZMANN_EV_PER_K * temperature_k
    x = quanta / kt
    if quantum:
        with np.errstate(over="ignore"):  # exp of a stiff mode's x overflows to inf, and x / inf is 0
            occupation = 1.0 / np.expm1(x)
        energy = quanta * (0.5 + occupation)
        oscillator_entropy = x * occupation - np.log(-np.expm1(-x))  # in units of k
    else:
        energy = np.full_like(x, kt)
        oscillator_entropy = 1.0 - np.log(x)
    moment = HBAR_EV_PS ** 2 / (2.0 * quanta)  # hbar / (2 omega) in eV ps²
    average = average_moment_amu_a2 / EV_IN_AMU_ANGSTROM2_PER_PS2
    capped = moment * average / (moment + average)
    rotor_entropy = 0.5 + 0.5 * np.log(2.0 * np.pi * capped * kt / HBAR_EV_PS ** 2)
    weight = 1.0 / (1.0 + (cutoff_cm1 / np.asarray(frequencies_cm1, float)) ** 4)
    entropy = weight * oscillator_entropy + (1.0 - weight) * rotor_entropy
    return float(np.sum(energy - kt * entropy))


def principal_moments(positions, masses) -> np.ndarray:
    """Principal moments of inertia (3,) in amu Å², ascending."""
    centred, masses = _centred(positions, masses)
    inertia = -np.einsum("a,ai,aj->ij", masses, centred, centred)
    inertia[np.diag_indices(3)] += np.einsum("a,a->", masses, (centred ** 2).sum(1))
    return np.linalg.eigvalsh(inertia)


def rotational_free_energy(positions, masses, temperature_k: float) -> float:
    """Classical rigid-rotor free energy (eV) of a non-linear molecule, symmetry number 1; see the module."""
    if not temperature_k > 0:
        raise ValueError(f"temperature must be positive (K), got {temperature_k}")
    kt = BOLTZMANN_EV_PER_K * temperature_k
    moments = principal_moments(positions, masses) / EV_IN_AMU_ANGSTROM2_PER_PS2  # eV ps²
    if moments[0] <= 1e-12 * moments[-1]:
        raise ValueError("rotational_free_energy is for non-linear molecules; this one is linear")
    partition = np.sqrt(np.pi * np.prod(moments)) * (2.0 * kt / HBAR_EV_PS ** 2) ** 1.5
    return float(-kt * np.log(partition))
