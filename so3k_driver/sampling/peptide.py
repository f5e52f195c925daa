"""Backbone topology of capped peptides (Ac-(Xaa)n-NHMe), derived from the structure by bonding.

Nothing is hard-coded: atoms are bonded when closer than 1.2 × the sum of covalent radii, amide
groups are C(=O)–N pairs, and the chain is walked N → CA → C. All indices here are 0-based; PLUMED
wants 1-based (add 1). Lengths in Å, angles in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The bond criteria (covalent radii, topology and breakage scales) live in evaluation/topology.py,
# shared with the driver's bond guard.
from ..evaluation.topology import bond_graph


@dataclass(frozen=True)
class Backbone:
    """0-based atom indices of the backbone, one entry per residue (caps excluded)."""

    n: tuple[int, ...]        # amide N of each residue
    ca: tuple[int, ...]       # alpha carbons
    c: tuple[int, ...]        # carbonyl carbons
    o: tuple[int, ...]        # carbonyl oxygens
    h: tuple[int | None, ...]  # amide H on N (None for proline-like residues)
    cap_c: int                # acetyl carbonyl carbon (before residue 1)
    cap_o: int
    cap_n: int                # N-methyl amide N (after the last residue)
    cap_h: int | None

    @property
    def num_residues(self) -> int:
        return len(self.ca)

    def phi_atoms(self) -> list[tuple[int, int, int, int]]:
        """C(i-1), N(i), CA(i), C(i) for every residue."""
        previous = (self.cap_c,) + self.c[:-1]
        return [(previous[i], self.n[i], self.ca[i], self.c[i]) for i in range(self.num_residues)]

    def psi_atoms(self) -> list[tuple[int, int, int, int]]:
        """N(i), CA(i), C(i), N(i+1) for every residue."""
        following = self.n[1:] + (self.cap_n,)
        return [(self.n[i], self.ca[i], self.c[i], following[i]) for i in range(self.num_residues)]

    def end_to_end_atoms(self) -> tuple[int, int]:
        """Carbonyl carbons of the first and last residues (acetyl cap C and last residue's C)."""
        return self.cap_c, self.c[-1]

    def helix_hbond_pairs(self, span: int = 4) -> list[tuple[int, int]]:
        """(O of peptide unit k, amide H of unit k + span) for every i→i+span hydrogen bond a helix makes:
        span 4 for the α-helix, 3 for the 3₁₀-helix; k = 0 is the acetyl O, the last donor the C-terminal
        cap's NH; units without an H are skipped."""
        oxygens = (self.cap_o,) + self.o
        hydrogens = self.h + (self.cap_h,)
        return [(oxygens[k], hydrogens[k + span - 1]) for k in range(len(oxygens))
                if k + span - 1 < len(hydrogens) and hydrogens[k + span - 1] is not None]

    def heavy_backbone(self) -> list[int]:
        """N, CA, C of every residue, in chain order (the radius-of-gyration atom set)."""
        return [i for k in range(self.num_residues) for i in (self.n[k], self.ca[k], self.c[k])]


def find_backbone(numbers, positions) -> Backbone:
    """Backbone of a linear capped peptide; raises ValueError if the chain cannot be traced."""
    numbers = np.asarray(numbers)
    graph = bond_graph(numbers, positions)
    element = lambda i: int(numbers[i])  # noqa: E731

    def carbonyl_oxygen(c):
        oxygens = [j for j in graph[c] if element(j) == 8 and len(graph[j]) == 1]
        return oxygens[0] if oxygens else None

    # amide bonds: carbonyl C (C with a terminal O) bonded to N
    amides = {}  # carbonyl C -> N
    for c in range(len(numbers)):
        if element(c) == 6 and carbonyl_oxygen(c) is not None:
            nitrogens = [j for j in graph[c] if element(j) == 7]
            if nitrogens:
                amides[c] = nitrogens[0]
    n_to_c = {n: c for c, n in amides.items()}

    def next_residue(n):
        """(CA, C) of the residue whose N is n, or None for the C-terminal cap."""
        for ca in graph[n]:
            if element(ca) != 6 or ca in amides:
                continue
            for c in graph[ca]:
                if c in amides and amides[c] != n:
                    return ca, c
        return None

    # the N-terminal cap carbonyl is the amide C that is not any residue's C
    residue_cs = {step[1] for n in n_to_c if (step := next_residue(n))}
    starts = [c for c in amides if c not in residue_cs]
    if len(starts) != 1:
        raise ValueError(f"cannot identify a single N-terminal cap (found {len(starts)} candidates)")
    cap_c = starts[0]
    ns, cas, cs, os_, hs = [], [], [], [], []
    n = amides[cap_c]
    while (step := next_residue(n)) is not None:
        ca, c = step
        ns.append(n); cas.append(ca); cs.append(c); os_.append(carbonyl_oxygen(c))
        hs.append(next((j for j in graph[n] if element(j) == 1), None))
        n = amides[c]
        if len(ns) > len(numbers):
            raise ValueError("backbone walk did not terminate")
    if not cas:
        raise ValueError("no residues found between the caps")
    return Backbone(tuple(ns), tuple(cas), tuple(cs), tuple(os_), tuple(hs), cap_c, carbonyl_oxygen(cap_c), n,
                    next((j for j in graph[n] if element(j) == 1), None))


def dihedrals(positions, quads) -> np.ndarray:
    """Dihedral angles in degrees, positions (..., N, 3) → (..., len(quads))."""
    p = np.asarray(positions, float)
    q = np.asarray(quads)
    b0 = p[..., q[:, 0], :] - p[..., q[:, 1], :]
    b1 = p[..., q[:, 2], :] - p[..., q[:, 1], :]
    b2 = p[..., q[:, 3], :] - p[..., q[:, 2], :]
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1, -1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, -1, keepdims=True) * b1
    x = np.sum(v * w, -1)
    y = np.sum(np.cross(b1, v) * w, -1)
    return np.degrees(np.arctan2(y, x))


def distance(positions, i: int, j: int) -> np.ndarray:
    """Distance (Å) between atoms i and j, positions (..., N, 3)."""
    p = np.asarray(positions, float)
    return np.linalg.norm(p[..., i, :] - p[..., j, :], axis=-1)


def radius_of_gyration(positions, atoms) -> np.ndarray:
    """Unweighted radius of gyration (Å) of the given atoms (same definition as PLUMED GYRATION TYPE=RADIUS)."""
    p = np.asarray(positions, float)[..., list(atoms), :]
    centred = p - p.mean(axis=-2, keepdims=True)
    return np.sqrt(np.mean(np.sum(centred**2, -1), -1))


# alpha-helical basin of the Ramachandran plot (degrees)
HELIX_PHI = (-100.0, -30.0)
HELIX_PSI = (-80.0, -5.0)


def helical_residues(phi, psi) -> np.ndarray:
    """Boolean mask: residue in the alpha-helical basin (phi in [-100, -30]°, psi in [-80, -5]°)."""
    phi, psi = np.asarray(phi), np.asarray(psi)
    return (phi >= HELIX_PHI[0]) & (phi <= HELIX_PHI[1]) & (psi >= HELIX_PSI[0]) & (psi <= HELIX_PSI[1])


HELIX_HBOND_CUTOFF_A = 2.5  # H···O distance of a backbone hydrogen bond (analysis; the helix CV's switch midpoint)
HELIX_HBOND_SWITCH_POWERS = (6, 12)  # n, m of the helix CV's rational switch (PLUMED's RATIONAL NN, MM)


def helix_hbonds(positions, backbone: Backbone, cutoff: float = HELIX_HBOND_CUTOFF_A, span: int = 4) -> np.ndarray:
    """i→i+span backbone hydrogen bonds O(i)···H–N(i+span) with H···O < cutoff Å (span 4: α-helix, 3: 3₁₀);
    (..., pairs) booleans, the pairs of Backbone.helix_hbond_pairs(span); (..., 0) for a chain too short."""
    p = np.asarray(positions, float)
    pairs = backbone.helix_hbond_pairs(span)
    if not pairs:
        return np.zeros(p.shape[:-2] + (0,), dtype=bool)
    return np.stack([distance(p, o, h) < cutoff for o, h in pairs], axis=-1)


def helix_hbond_count(positions, backbone: Backbone, span: int = 4) -> np.ndarray:
    """The smooth count the helix CV biases (``so3k sample init --metad helix``; PLUMED's COORDINATION):
    Σ s(r) over the pairs of Backbone.helix_hbond_pairs(span), r the H···O distance (Å) and
    s(r) = (1 - x^n) / (1 - x^m), x = r / HELIX_HBOND_CUTOFF_A, (n, m) = HELIX_HBOND_SWITCH_POWERS
    (1/2 at the cutoff, 0.79 at 2 Å, 0.12 at 3.5 Å). positions (..., atoms, 3) Å; returns (...)."""
    p = np.asarray(positions, float)
    pairs = backbone.helix_hbond_pairs(span)
    if not pairs:
        return np.zeros(p.shape[:-2])
    n, m = HELIX_HBOND_SWITCH_POWERS
    x = np.stack([distance(p, o, h) for o, h in pairs], axis=-1) / HELIX_HBOND_CUTOFF_A
    near_cutoff = np.abs(x - 1.0) < 1e-9  # 0/0 there; the limit is n/m
    x = np.where(near_cutoff, 0.5, x)
    return np.where(near_cutoff, n / m, (1 - x**n) / (1 - x**m)).sum(axis=-1)


def helical_mask(positions, backbone: Backbone) -> np.ndarray:
    """(..., residues) booleans: each residue's φ/ψ in the helical basin (helical_residues)."""
    return helical_residues(dihedrals(positions, backbone.phi_atoms()), dihedrals(positions, backbone.psi_atoms()))


def helix_shape(positions, backbone: Backbone) -> dict:
    """One frame (atoms, 3) Å described for a reader: helical_residues (count) of residues, helix_map (H per
    residue with helical φ/ψ, - otherwise), alpha_hbonds and three_ten_hbonds (formed i→i+4 and i→i+3
    backbone H-bonds, helix_hbonds) of *_possible, and end_to_end_A (Å, Backbone.end_to_end_atoms)."""
    helical = helical_mask(positions, backbone)
    shape = {"helical_residues": int(helical.sum()), "residues": backbone.num_residues,
             "helix_map": "".join("H" if h else "-" for h in helical)}
    for span, name in ((4, "alpha_hbonds"), (3, "three_ten_hbonds")):
        formed = helix_hbonds(positions, backbone, span=span)
        shape[name], shape[f"{name}_possible"] = int(formed.sum()), formed.shape[-1]
    first, last = backbone.end_to_end_atoms()
    return {**shape, "end_to_end_A": round(float(distance(positions, first, last)), 2)}
