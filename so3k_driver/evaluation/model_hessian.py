"""Lindh's model Hessian (Lindh, Bernhardsson, Karlström, Malmqvist, Chem. Phys. Lett. 241, 423 (1995)):
a cheap, positive semi-definite guess of a molecule's Hessian from its geometry alone, used to
precondition the batched L-BFGS of :mod:`so3k_driver.evaluation.minimise`.

Every pair, bond angle and torsion contributes k ρ g gᵀ, where g is the gradient of the internal
coordinate with respect to the Cartesian positions and ρ measures how bonded its atoms are:

    ρ_ij = exp(α_ij (r_ref,ij² − r_ij²))                      (r in bohr)
    pairs:    k_r ρ_ij,                  k_r = 0.45 hartree/bohr²
    angles:   k_φ ρ_ij ρ_jk  (j central), k_φ = 0.15 hartree/rad²
    torsions: k_τ ρ_ij ρ_jk ρ_kl,         k_τ = 0.005 hartree/rad²

α (bohr⁻²) and r_ref (bohr) depend on the periodic-table rows of the two atoms (H, He; Li–Ne; Na and
beyond: elements past the third row use its parameters, as is common). Terms whose weight is below
``threshold`` are left out, which keeps the angles and torsions to those among nearly bonded atoms.

Why it helps: a scalar initial inverse Hessian (ASE's 1/70 Å²/eV) treats the stiff X–H and backbone
stretches and the soft torsions alike, so L-BFGS spends its first tens of steps learning that spread.
The model Hessian knows it from the start: on Ac-Ala3-NHMe MD frames L-BFGS needs about half the force
evaluations (docs/results/ala3_minima/README.md). Translations and rotations have no curvature here,
so the preconditioner adds ``shift`` (eV/Å², default 2) on the diagonal before inverting.

Units: positions Å in, Hessian eV/Å² out (3N × 3N, atom-major: rows 3a, 3a+1, 3a+2 are atom a's x, y, z).
"""

from __future__ import annotations

import numpy as np

from ..units import BOHR_IN_ANGSTROM, HARTREE_IN_EV

# Lindh et al. (1995), table 1 and eq. (3): rows 1, 2, 3 of the periodic table.
ALPHA_PER_BOHR2 = np.array([[1.0000, 0.3949, 0.3949],
                            [0.3949, 0.2800, 0.2800],
                            [0.3949, 0.2800, 0.2800]])
R_REF_BOHR = np.array([[1.35, 2.10, 2.53],
                       [2.10, 2.87, 3.40],
                       [2.53, 3.40, 3.40]])
K_PAIR, K_ANGLE, K_TORSION = 0.45, 0.15, 0.005  # hartree/bohr², hartree/rad², hartree/rad²
DEFAULT_THRESHOLD = 1e-3
# eV/Å² on the diagonal: curvature for translations and rotations, and a floor under Lindh's soft torsions.
# Measured with L-BFGS (no line search) on Ac-Ala3-NHMe frames, float32: with 1 eV/Å² a few frames
# thrashed for 300-1000 steps (steps along too-soft directions raised the energy again and again); 2 eV/Å²
# ended those within 70 steps at 28 steps per ordinary frame; 5 and 10 eV/Å² took 31 and 33.
DEFAULT_SHIFT = 2.0


def periodic_row(numbers: np.ndarray) -> np.ndarray:
    """0 for H and He, 1 for Li–Ne, 2 for everything heavier (Lindh's parameters stop at row 3)."""
    numbers = np.asarray(numbers)
    return np.where(numbers <= 2, 0, np.where(numbers <= 10, 1, 2))


def bondedness(numbers: np.ndarray, positions_bohr: np.ndarray) -> np.ndarray:
    """ρ (N, N): exp(α (r_ref² − r²)) for every pair, 0 on the diagonal."""
    rows = periodic_row(numbers)
    alpha = ALPHA_PER_BOHR2[rows[:, None], rows[None, :]]
    r_ref = R_REF_BOHR[rows[:, None], rows[None, :]]
    r2 = np.sum((positions_bohr[:, None] - positions_bohr[None, :]) ** 2, axis=-1)
    rho = np.exp(np.minimum(alpha * (r_ref**2 - r2), 50.0))
    np.fill_diagonal(rho, 0.0)
    return rho


def _neighbour_table(adjacent: np.ndarray) -> np.ndarray:
    """(N, K) indices of each atom's neighbours in ``adjacent`` (N, N) bool, padded with -1."""
    counts = adjacent.sum(axis=1)
    table = np.full((len(adjacent), max(int(counts.max(initial=0)), 1)), -1)
    for atom in range(len(adjacent)):
        found = np.flatnonzero(adjacent[atom])
        table[atom, :len(found)] = found
    return table


def _pair_terms(x, rho, threshold):
    first, second = np.nonzero(np.triu(rho > threshold / K_PAIR, 1))
    u = x[first] - x[second]
    unit = u / np.linalg.norm(u, axis=-1, keepdims=True)
    return np.stack([first, second], 1), np.stack([unit, -unit], 1), K_PAIR * rho[first, second]


def _angle_terms(x, rho, neighbours, threshold):
    """Angles i-j-k (j central, i < k) with K_ANGLE ρ_ij ρ_jk above the threshold."""
    K = neighbours.shape[1]
    j = np.repeat(np.arange(len(x)), K * K)
    i = np.repeat(neighbours, K, axis=1).ravel()
    k = np.tile(neighbours, (1, K)).ravel()
    keep = (i >= 0) & (k >= 0) & (i < k)
    i, j, k = i[keep], j[keep], k[keep]
    weight = K_ANGLE * rho[i, j] * rho[j, k]
    keep = weight > threshold
    i, j, k, weight = i[keep], j[keep], k[keep], weight[keep]
    u, v = x[i] - x[j], x[k] - x[j]
    lu = np.linalg.norm(u, axis=-1, keepdims=True)
    lv = np.linalg.norm(v, axis=-1, keepdims=True)
    cos = np.sum(u * v, axis=-1, keepdims=True) / (lu * lv)
    sin = np.sqrt(np.maximum(1.0 - cos**2, 1e-8))
    # d(angle)/dx_i = -(v/(|u||v|) - cos u/|u|²)/sin, and symmetrically for k; j takes minus their sum
    grad_i = -(v / (lu * lv) - cos * u / lu**2) / sin
    grad_k = -(u / (lu * lv) - cos * v / lv**2) / sin
    return np.stack([i, j, k], 1), np.stack([grad_i, -grad_i - grad_k, grad_k], 1), weight


def _torsion_terms(x, rho, neighbours, threshold):
    """Torsions i-j-k-l around each nearly bonded pair j < k with K_TORSION ρ_ij ρ_jk ρ_kl above the
    threshold; gradients as in Blondel and Karplus, J. Comput. Chem. 17, 1132 (1996)."""
    j, k = np.nonzero(np.triu(rho > threshold / (4 * K_TORSION), 1))  # the other two ρ can exceed 1
    K = neighbours.shape[1]
    i = np.repeat(neighbours[j], K, axis=1).ravel()
    l_ = np.tile(neighbours[k], (1, K)).ravel()
    j, k = np.repeat(j, K * K), np.repeat(k, K * K)
    keep = (i >= 0) & (l_ >= 0) & (i != k) & (l_ != j) & (i != l_)
    i, j, k, l_ = i[keep], j[keep], k[keep], l_[keep]
    weight = K_TORSION * rho[i, j] * rho[j, k] * rho[k, l_]
    f, g, h = x[i] - x[j], x[j] - x[k], x[l_] - x[k]
    a, b = np.cross(f, g), np.cross(h, g)
    a2, b2 = np.sum(a * a, axis=-1), np.sum(b * b, axis=-1)
    keep = (weight > threshold) & (a2 > 1e-8) & (b2 > 1e-8)  # collinear: no torsion defined
    f, g, h, a, b, a2, b2 = (v[keep] for v in (f, g, h, a, b, a2, b2))
    i, j, k, l_, weight = i[keep], j[keep], k[keep], l_[keep], weight[keep]
    lg = np.linalg.norm(g, axis=-1)
    fg, hg = np.sum(f * g, axis=-1), np.sum(h * g, axis=-1)
    grad_i = -(lg / a2)[:, None] * a
    grad_l = (lg / b2)[:, None] * b
    cross_a = (fg / (a2 * lg))[:, None] * a
    cross_b = (hg / (b2 * lg))[:, None] * b
    grad_j = -grad_i + cross_a - cross_b
    grad_k = -grad_l - cross_a + cross_b
    return np.stack([i, j, k, l_], 1), np.stack([grad_i, grad_j, grad_k, grad_l], 1), weight


def lindh_hessian(numbers, positions, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Lindh's model Hessian (3N, 3N) in eV/Å² of one gas-phase structure: numbers (N,), positions (N, 3) Å.
    Terms with weight k·ρ… below ``threshold`` (hartree per bohr² or rad²) are left out."""
    numbers = np.asarray(numbers)
    positions = np.asarray(positions, np.float64)
    if positions.shape != (len(numbers), 3):
        raise ValueError(f"positions must have shape ({len(numbers)}, 3), got {positions.shape}")
    x = positions / BOHR_IN_ANGSTROM
    rho = bondedness(numbers, x)
    n = len(numbers)
    neighbours = _neighbour_table(rho > threshold)
    hessian = np.zeros(9 * n * n)
    for atoms, grads, weight in (_pair_terms(x, rho, threshold), _angle_terms(x, rho, neighbours, threshold),
                                 _torsion_terms(x, rho, neighbours, threshold)):
        # Σ_t w_t g_t g_tᵀ from each term's (3k × 3k) block only: a term touches k <= 4 atoms, and the dense
        # Wilson-matrix product cost 23 ms for 162 atoms, which matters when minimise recomputes it.
        T, k = atoms.shape
        rows = (3 * atoms[:, :, None] + np.arange(3)).reshape(T, 3 * k)
        flat_grads = grads.reshape(T, 3 * k)
        blocks = weight[:, None, None] * flat_grads[:, :, None] * flat_grads[:, None, :]
        hessian += np.bincount((rows[:, :, None] * (3 * n) + rows[:, None, :]).ravel(), blocks.ravel(), 9 * n * n)
    return hessian.reshape(3 * n, 3 * n) * (HARTREE_IN_EV / BOHR_IN_ANGSTROM**2)


def inverse_preconditioner(numbers, positions, shift: float = DEFAULT_SHIFT,
                           threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """(lindh_hessian + shift·1)⁻¹ (3N, 3N) in Å²/eV: the initial inverse Hessian of a preconditioned
    L-BFGS. shift (eV/Å², > 0) gives translations and rotations a finite curvature."""
    if not shift > 0:
        raise ValueError(f"shift must be > 0 eV/Å², got {shift!r}")
    hessian = lindh_hessian(numbers, positions, threshold)
    hessian[np.diag_indices_from(hessian)] += shift
    return np.linalg.inv(hessian)
