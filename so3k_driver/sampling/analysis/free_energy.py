"""Reweighted free energies of a metadynamics run, their error from two halves, and named basins.

Pure numpy: every function takes arrays and returns arrays or plain records; reading COLVAR files,
plots and JSON are in free_energy_report.py.

Reweighting (Tiwary & Parrinello, J. Phys. Chem. B 119, 736 (2015)): PLUMED's METAD with CALC_RCT
prints ``metad.rbias`` = V(s, t) - c(t) (kJ/mol) for each COLVAR frame; a frame then carries the
weight w = exp(rbias / kT) in unbiased averages, whatever the time at which it was taken. With
K frames (s_k, w_k) and bins b of volume ΔV_b (Å, rad or rad², in the CV's unit):

    P_b = Σ_{k in b} w_k / Σ_k w_k                (probability of bin b, dimensionless)
    F_b = -kT ln(P_b / ΔV_b) - F_0                (kJ/mol; +inf where no frame falls)

F_0 puts the full run's minimum at zero. The first frames are dropped (burn-in: the bias and c(t)
still change fast there and the estimator is poor). The error estimate comes from the kept frames
cut into a first and a second half of equal length: each half is normalised on its own (its own
Σ w) and shifted by the same F_0, so F_first - F_second = kT ln(P_second / P_first) per bin: a
difference in probability, not in where each half happens to put its own noisy minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...units import BOLTZMANN_EV_PER_K, KJ_PER_MOL_IN_EV

BOLTZMANN_KJ_PER_MOL_K = BOLTZMANN_EV_PER_K / KJ_PER_MOL_IN_EV  # 0.0083145 kJ/(mol K)
DEFAULT_BURN_IN = 0.1        # fraction of the frames dropped at the start
DEFAULT_CUTOFF_KJMOL = 20.0  # bins with F below this (full run) enter the half-difference summary
MIN_BASIN_FRACTION = 0.005   # a basin holding less of the full run's weight is not reported as found


def thermal_energy(temperature_K: float) -> float:
    """kT in kJ/mol at temperature_K (K)."""
    return BOLTZMANN_KJ_PER_MOL_K * float(temperature_K)


def check_burn_in(burn_in) -> float:
    """burn_in as a float; ValueError unless it is a number in [0, 1) (a fraction of the frames)."""
    if not (isinstance(burn_in, (int, float)) and 0.0 <= burn_in < 1.0):
        raise ValueError(f"burn-in must be a fraction in [0, 1) of the frames, got {burn_in!r}")
    return float(burn_in)


def kept_frames(count: int, burn_in: float = DEFAULT_BURN_IN) -> tuple[slice, slice, slice]:
    """(kept, first half, second half) slices of count frames after dropping the first burn_in
    fraction (0 <= burn_in < 1; floor of burn_in * count frames). The halves split the kept frames;
    with an odd number the second half has one more."""
    burn_in = check_burn_in(burn_in)
    start = int(np.floor(burn_in * count))
    middle = start + (count - start) // 2
    return slice(start, count), slice(start, middle), slice(middle, count)


def log_weights(rbias, kT: float) -> np.ndarray:
    """ln w = rbias / kT (rbias and kT in kJ/mol), shifted so the largest is 0 (exp cannot overflow;
    every estimate below is normalised, so the shift cancels)."""
    log_w = np.asarray(rbias, float) / kT
    return log_w - log_w.max() if log_w.size else log_w


def effective_frames(log_w) -> float:
    """Kish's effective sample size (Σw)² / Σw² of weights exp(log_w): K for equal weights, 1 when
    one frame dominates."""
    w = np.exp(np.asarray(log_w, float) - np.max(log_w))
    return float(w.sum() ** 2 / np.sum(w**2))


def wrap_angle(angle):
    """Angles (rad) mapped into [-π, π)."""
    return (np.asarray(angle, float) + np.pi) % (2 * np.pi) - np.pi


def bin_probabilities(samples, log_w, edges) -> np.ndarray:
    """P_b: the weighted fraction of frames in each bin, shape (len(edges[0]) - 1, ...).

    samples: (K,) for one CV or (K, D) for D CVs, in the CV's unit (wrap torsions first);
    log_w: (K,) ln of the weights; edges: one increasing array per CV. Frames outside the edges
    count in the normalisation, so the P_b add up to the fraction of weight inside."""
    samples = np.asarray(samples, float).reshape(len(log_w), -1)
    w = np.exp(np.asarray(log_w, float) - np.max(log_w))
    counts, _ = np.histogramdd(samples, bins=[np.asarray(e, float) for e in edges], weights=w)
    return counts / w.sum()


def free_energy(probability, edges, kT: float) -> np.ndarray:
    """F_b = -kT ln(P_b / ΔV_b) in kJ/mol, not shifted; +inf for empty bins. ΔV_b is the product of
    the bin widths (CV units)."""
    volume = np.ones(probability.shape)
    for axis, e in enumerate(edges):
        shape = [1] * probability.ndim
        shape[axis] = -1
        volume = volume * np.diff(np.asarray(e, float)).reshape(shape)
    with np.errstate(divide="ignore"):
        return -kT * np.log(probability / volume)


@dataclass
class HalfDifference:
    """Summary of |F_first - F_second| (kJ/mol) over the region: the bins whose full-run F is below
    cutoff_kJmol and in which both halves have weight. max_kJmol and mean_kJmol (plain mean over the
    region's bins) are None when the region is empty; missing_bins counts the bins below the cutoff
    left out because one half never visited them."""

    cutoff_kJmol: float
    max_kJmol: float | None
    mean_kJmol: float | None
    bins: int
    missing_bins: int


def half_difference(full, first, second, cutoff: float) -> tuple[np.ndarray, np.ndarray, HalfDifference]:
    """(per-bin |first - second| with nan where either half is empty, the region mask, summary);
    all in kJ/mol with full zero at its minimum (see HalfDifference)."""
    both = np.isfinite(first) & np.isfinite(second)
    difference = np.where(both, np.abs(np.where(both, first, 0.0) - np.where(both, second, 0.0)), np.nan)
    low = np.isfinite(full) & (full < cutoff)
    region = low & both
    values = difference[region]
    summary = HalfDifference(float(cutoff), float(values.max()) if values.size else None,
                             float(values.mean()) if values.size else None, int(region.sum()),
                             int((low & ~both).sum()))
    return difference, region, summary


@dataclass
class FreeEnergyEstimate:
    """A reweighted free-energy histogram with its two-halves error. Arrays have one axis per CV
    (bins); F in kJ/mol, zero at the full run's minimum, +inf in empty bins."""

    edges: list[np.ndarray]          # bin edges per CV (CV unit: Å, rad)
    centres: list[np.ndarray]        # bin centres per CV
    full: np.ndarray
    first: np.ndarray
    second: np.ndarray
    difference: np.ndarray           # |first - second|, nan where a half is empty
    region: np.ndarray               # bool: bins entering the summary
    summary: HalfDifference
    kT: float                        # kJ/mol
    frames_total: int
    frames_burn_in: int
    frames_used: int
    frames_halves: tuple[int, int]
    effective_frames: tuple[float, float, float]  # Kish sizes of the kept frames, first, second half

    @property
    def minimum(self) -> tuple[float, ...]:
        """CV values (bin centres, CV unit) of the full run's lowest bin."""
        index = np.unravel_index(np.argmin(self.full), self.full.shape)
        return tuple(float(c[i]) for c, i in zip(self.centres, index))


def reweighted_free_energy(samples, rbias, temperature_K: float, edges, burn_in: float = DEFAULT_BURN_IN,
                           cutoff: float = DEFAULT_CUTOFF_KJMOL) -> FreeEnergyEstimate:
    """F(s) from K frames in time order: samples (K,) or (K, D) in the CV units (torsions wrapped into
    [-π, π) by the caller and edges spanning [-π, π] for periodic bins), rbias (K,) kJ/mol,
    temperature_K (K); edges one array per CV. burn_in: fraction of the frames dropped at the start;
    cutoff (kJ/mol): the region of the half-difference summary. Raises ValueError with fewer than
    2 kept frames."""
    samples = np.asarray(samples, float)
    rbias = np.asarray(rbias, float)
    if len(samples) != len(rbias):
        raise ValueError(f"{len(samples)} samples but {len(rbias)} rbias values")
    kT = thermal_energy(temperature_K)
    kept, first, second = kept_frames(len(rbias), burn_in)
    if (second.stop - first.start) < 2:
        raise ValueError(f"{len(rbias)} frames leave fewer than 2 after a burn-in of {burn_in:g}: no halves")
    log_w = log_weights(rbias, kT)
    edges = [np.asarray(e, float) for e in edges]
    parts = [free_energy(bin_probabilities(samples[s], log_w[s], edges), edges, kT) for s in (kept, first, second)]
    shift = np.min(parts[0])
    full, one, two = (p - shift for p in parts)
    difference, region, summary = half_difference(full, one, two, cutoff)
    return FreeEnergyEstimate(
        edges, [0.5 * (e[1:] + e[:-1]) for e in edges], full, one, two, difference, region, summary, kT,
        len(rbias), kept.start, kept.stop - kept.start, (first.stop - first.start, second.stop - second.start),
        tuple(effective_frames(log_w[s]) for s in (kept, first, second)))


def run_lengths(count: int, points: int) -> np.ndarray:
    """``points`` evenly spaced run lengths (frame counts) up to ``count``, the last being ``count``;
    lengths that round to the same count appear once."""
    if not (isinstance(points, int) and points >= 1):
        raise ValueError(f"points must be an integer >= 1, got {points!r}")
    return np.unique(np.linspace(0, count, points + 1).astype(int)[1:])


def _halvable_lengths(count: int, points: int, burn_in: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The run lengths of :func:`run_lengths`, and (row, length) for those that keep at least two frames
    after their own burn-in: the ones a two-halves test can be made on."""
    ends = run_lengths(count, points)
    halvable = []
    for row, end in enumerate(ends):
        kept = kept_frames(int(end), burn_in)[0]
        if kept.stop - kept.start >= 2:
            halvable.append((row, int(end)))
    return ends, halvable


def profile_half_difference_history(samples, rbias, temperature_K: float, edges, burn_in: float = DEFAULT_BURN_IN,
                                    cutoff: float = DEFAULT_CUTOFF_KJMOL,
                                    points: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The surface's two-halves test had the run stopped earlier: :func:`reweighted_free_energy` on the
    frames up to each of ``points`` evenly spaced run lengths (the last is the whole run; same bins, its
    own burn-in, halves and region). Returns (end frame indices, max, mean of |F_first - F_second|
    (kJ/mol) over each region; NaN where a length has no region yet)."""
    rbias = np.asarray(rbias, float)
    samples = np.asarray(samples, float)
    ends, halvable = _halvable_lengths(len(rbias), points, burn_in)
    largest, mean = np.full(len(ends), np.nan), np.full(len(ends), np.nan)
    for row, end in halvable:
        summary = reweighted_free_energy(samples[:end], rbias[:end], temperature_K, edges, burn_in, cutoff).summary
        if summary.max_kJmol is not None:
            largest[row], mean[row] = summary.max_kJmol, summary.mean_kJmol
    return ends - 1, largest, mean


# --- Named basins of the Ramachandran plane (φ, ψ of the biased residue, degrees) ---------------------


@dataclass(frozen=True)
class Basin:
    """A circular region of the periodic (φ, ψ) plane: centre (degrees) and radius (degrees)."""

    name: str
    phi: float
    psi: float
    radius: float = 40.0


# Centres in degrees, rounded to 5°. C7eq, C5, C7ax and alpha_L are the gas-phase minima of the alanine
# dipeptide Ac-Ala-NHMe (MP2 and DFT: Vargas, Garza, Hay & Dixon, J. Phys. Chem. A 106, 3213 (2002),
# where alpha_L is called αL/RL). alpha_R is the right-handed helix region (ideal α-helix near
# (-57°, -47°), Pauling & Corey 1951; peptide simulations put the basin near (-65°, -40°)); it is a
# shallow shoulder rather than a minimum for the capped monomer in vacuum, but a minimum once a residue
# sits in a longer chain. PII is the polyproline II region (φ ≈ -75°, ψ ≈ +145°; Adzhubei, Sternberg
# & Makarov, J. Mol. Biol. 425, 2100 (2013)). Equal 40° radii with the nearest centre winning: the
# regions are the Voronoi cells of the centres cut to 40°, so no point is in two basins, and the
# radius is wide enough that the ±5° spread of published centres does not move a thermal structure
# from one basin to another.
RAMACHANDRAN_BASINS = (
    Basin("C7eq", -85.0, 75.0),
    Basin("C5", -155.0, 160.0),
    Basin("PII", -75.0, 145.0),
    Basin("alpha_R", -65.0, -40.0),
    Basin("alpha_L", 65.0, 30.0),
    Basin("C7ax", 75.0, -55.0),
)


def _periodic_degrees(delta):
    return (np.asarray(delta, float) + 180.0) % 360.0 - 180.0


def assign_basins(phi_deg, psi_deg, basins=RAMACHANDRAN_BASINS) -> np.ndarray:
    """Index into basins of each (φ, ψ) point (degrees, any period), or -1 outside all of them: the
    nearest centre (periodic Euclidean distance in degrees) if the point is within its radius."""
    phi = np.asarray(phi_deg, float)[..., None]
    psi = np.asarray(psi_deg, float)[..., None]
    centres_phi = np.array([b.phi for b in basins])
    centres_psi = np.array([b.psi for b in basins])
    radii = np.array([b.radius for b in basins])
    distance = np.hypot(_periodic_degrees(phi - centres_phi), _periodic_degrees(psi - centres_psi))
    nearest = np.argmin(distance, axis=-1)
    inside = np.take_along_axis(distance, nearest[..., None], -1)[..., 0] <= radii[nearest]
    return np.where(inside, nearest, -1)


@dataclass
class BasinFreeEnergy:
    """One basin: weight fraction P_B of the full run (dimensionless) and F (kJ/mol) for the full run
    and each half, on the common reference (see basin_free_energies); None where a part never visited
    the basin. half_difference = |F_first_half - F_second_half| (kJ/mol)."""

    name: str
    fraction: float
    F_kJmol: float | None
    F_first_half: float | None
    F_second_half: float | None
    half_difference: float | None
    found: bool


def basin_free_energies(phi_deg, psi_deg, rbias, temperature_K: float, burn_in: float = DEFAULT_BURN_IN,
                        basins=RAMACHANDRAN_BASINS,
                        min_fraction: float = MIN_BASIN_FRACTION) -> tuple[list[BasinFreeEnergy], str | None]:
    """Basin free energies F_B = -kT ln(P_B) (kJ/mol) from frames in time order (φ, ψ degrees, rbias
    kJ/mol), after the burn-in, for the kept frames and for each half.

    P_B = Σ_{k in B} w_k / Σ_k w_k over the frames of that part (frames outside every basin count in
    the total). All three are shifted by the same constant, -kT ln P of the reference basin in the
    full run, the reference being the found basin with the most weight, so F_kJmol is 0 there and a
    half's value for the reference itself shows that half's own disagreement. A basin is found when
    its full-run fraction exceeds min_fraction. Returns (one record per basin in table order, the
    reference basin's name or None when no basin is found)."""
    rbias = np.asarray(rbias, float)
    kT = thermal_energy(temperature_K)
    parts = kept_frames(len(rbias), burn_in)
    log_w = log_weights(rbias, kT)
    labels = assign_basins(phi_deg, psi_deg, basins)
    fractions = []
    for part in parts:
        w = np.exp(log_w[part] - np.max(log_w[part])) if len(log_w[part]) else np.zeros(0)
        total = w.sum()
        fractions.append(np.array([w[labels[part] == b].sum() / total if total > 0 else 0.0
                                   for b in range(len(basins))]))
    full = fractions[0]
    found = full > min_fraction
    if not found.any():
        return [BasinFreeEnergy(b.name, float(full[i]), None, None, None, None, False)
                for i, b in enumerate(basins)], None
    reference = int(np.argmax(np.where(found, full, -1.0)))
    offset = kT * np.log(full[reference])

    def energy(p):
        return None if p <= 0 else float(-kT * np.log(p) + offset)

    records = []
    for i, basin in enumerate(basins):
        values = [energy(f[i]) for f in fractions]
        difference = abs(values[1] - values[2]) if values[1] is not None and values[2] is not None else None
        records.append(BasinFreeEnergy(basin.name, float(full[i]), *values, difference, bool(found[i])))
    return records, basins[reference].name


def basin_history(phi_deg, psi_deg, rbias, temperature_K: float, burn_in: float = DEFAULT_BURN_IN,
                  points: int = 20, basins=RAMACHANDRAN_BASINS) -> tuple[np.ndarray, np.ndarray]:
    """How the basin free energies settle: F_B - F_ref (kJ/mol) from the frames kept after the burn-in
    up to each of ``points`` evenly spaced ends, ref being the basin with the most weight over the
    whole run. Returns (end frame indices (points,), F (points, basins), NaN where
    no frame up to that end is in the basin). A converged run shows flat lines at the end."""
    rbias = np.asarray(rbias, float)
    kT = thermal_energy(temperature_K)
    kept = kept_frames(len(rbias), burn_in)[0]
    labels = assign_basins(phi_deg, psi_deg, basins)[kept]
    w = np.exp(log_weights(rbias[kept], kT))  # the largest weight is 1
    weights = np.stack([np.cumsum(np.where(labels == b, w, 0.0)) for b in range(len(basins))], axis=1)
    ends = run_lengths(len(w), points) - 1 if len(w) else np.zeros(0, int)
    fractions = weights[ends] / np.cumsum(w)[ends, None]
    reference = int(np.argmax(fractions[-1])) if len(ends) else 0
    with np.errstate(divide="ignore", invalid="ignore"):
        F = -kT * np.log(fractions) + kT * np.log(fractions[:, reference:reference + 1])
    return ends + kept.start, np.where(np.isfinite(F), F, np.nan)


def half_difference_history(phi_deg, psi_deg, rbias, temperature_K: float, burn_in: float = DEFAULT_BURN_IN,
                            points: int = 10, basins=RAMACHANDRAN_BASINS) -> tuple[np.ndarray, np.ndarray]:
    """The two-halves test as it would have come out had the run stopped earlier: for each of ``points``
    evenly spaced run lengths (the last is the whole run), each basin's half difference (kJ/mol) from
    :func:`basin_free_energies` on the frames up to there, with its own burn-in and halves. Shows
    whether the test is closing and how fast (a run twice as long halves the variance of each half).
    Returns (end frame indices (points,), differences (points, basins), NaN where a basin is not found
    or one half never visits it)."""
    phi_deg, psi_deg, rbias = (np.asarray(a, float) for a in (phi_deg, psi_deg, rbias))
    ends, halvable = _halvable_lengths(len(rbias), points, burn_in)
    differences = np.full((len(ends), len(basins)), np.nan)
    for row, end in halvable:
        records, _ = basin_free_energies(phi_deg[:end], psi_deg[:end], rbias[:end], temperature_K, burn_in, basins)
        for column, record in enumerate(records):
            if record.found and record.half_difference is not None:
                differences[row, column] = record.half_difference
    return ends - 1, differences


def basin_blocks(phi_deg, psi_deg, rbias, temperature_K: float, burn_in: float = DEFAULT_BURN_IN,
                 blocks: int = 4, basins=RAMACHANDRAN_BASINS) -> tuple[np.ndarray, np.ndarray]:
    """Basin free energies in ``blocks`` consecutive, non-overlapping blocks of the frames kept after
    the burn-in: F_B - F_ref (kJ/mol) within each block, ref being the basin with the most weight over
    all kept frames. Unlike the cumulative history, blocks do not share frames, so a basin that the
    walkers or replicas left for a while shows up as a block far from the others (the halves are the
    case blocks = 2). Returns (block edges as frame indices (blocks + 1,), F (blocks, basins), NaN where
    a block has no frame in the basin)."""
    if not (isinstance(blocks, int) and blocks >= 2):
        raise ValueError(f"blocks must be an integer >= 2, got {blocks!r}")
    rbias = np.asarray(rbias, float)
    kT = thermal_energy(temperature_K)
    kept = kept_frames(len(rbias), burn_in)[0]
    labels = assign_basins(phi_deg, psi_deg, basins)[kept]
    w = np.exp(log_weights(rbias[kept], kT))
    edges = np.linspace(0, len(w), blocks + 1).astype(int)
    weights = np.array([[w[a:b][labels[a:b] == k].sum() for k in range(len(basins))]
                        for a, b in zip(edges[:-1], edges[1:])])
    totals = np.array([w[a:b].sum() for a, b in zip(edges[:-1], edges[1:])])
    reference = int(np.argmax(weights.sum(axis=0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        F = -kT * np.log(weights / totals[:, None]) + kT * np.log(weights[:, reference:reference + 1] / totals[:, None])
    return edges + kept.start, np.where(np.isfinite(F), F, np.nan)
