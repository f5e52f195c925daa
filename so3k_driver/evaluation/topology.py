"""Covalent bonds from geometry, and a guard that stops MD when a bond of the starting structure breaks.

One criterion everywhere: atoms i and j are bonded when their distance is below
scale × (r_i + r_j), with r the covalent radii of ASE (Å). Two scales answer two questions:

- topology (which atom is bonded to which in a sane structure): 1.2 keeps 1-3 neighbours apart
  (a C–H at 1.09 Å is bonded, H···H across a methyl at 1.78 Å is not);
- breakage (has a configuration fallen apart during MD): 1.6 tolerates thermal stretching
  (C–H up to 1.71 Å, C–C up to 2.43 Å), so only a bond that is truly gone counts.

Lengths in Å; atom indices 0-based in the API, 1-based in messages. Periodic cells are (3, 3)
with lattice vectors as rows (Å); distances then use the minimum image by rounding fractional
coordinates, which is exact for vectors shorter than half of the cell's smallest width (any
covalent bond in a cell wider than ~5 Å).
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelBreakdown, UserError

TOPOLOGY_BOND_SCALE = 1.2
BREAKAGE_BOND_SCALE = 1.6
PAIRS_PER_BLOCK = 4_000_000  # distance vectors held at once when searching bonds (~100 MB of float64)


def covalent_radii(numbers) -> np.ndarray:
    """(N,) covalent radii in Å (ASE's table)."""
    from ase.data import covalent_radii as table

    return table[np.asarray(numbers, dtype=np.int64)]


def minimum_image(vectors, cells) -> np.ndarray:
    """Shortest periodic images of difference vectors (M, 3) or (B, M, 3) Å; cells (3, 3) or
    (B, 3, 3) (one per structure), rows in Å, or None (no periodicity: vectors as they are)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if cells is None:
        return vectors
    cells = np.asarray(cells, dtype=np.float64)
    fractional = vectors @ np.linalg.inv(cells)
    fractional -= np.round(fractional)
    return fractional @ cells


def bond_pairs(numbers, positions, scale: float = TOPOLOGY_BOND_SCALE, cell=None) -> np.ndarray:
    """(M, 2) index pairs i < j (0-based) of atoms closer than scale × (sum of covalent radii, Å).

    positions (N, 3) Å; cell (3, 3) rows in Å for minimum-image distances, or None. Searched in
    blocks of rows, so memory stays bounded for large periodic systems (time is O(N²), once)."""
    positions = np.asarray(positions, dtype=np.float64)
    radii = covalent_radii(numbers)
    count = len(radii)
    block = max(1, PAIRS_PER_BLOCK // max(count, 1))
    found = []
    for start in range(0, count, block):
        rows = np.arange(start, min(start + block, count))
        vectors = minimum_image(positions[None, :] - positions[rows, None], cell)
        distance = np.linalg.norm(vectors, axis=-1)
        bonded = (distance < scale * (radii[rows, None] + radii[None])) & (np.arange(count)[None] > rows[:, None])
        i, j = np.nonzero(bonded)
        found.append(np.stack([rows[i], j], axis=1))
    return np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)


def bond_matrix(numbers, positions, scale: float = TOPOLOGY_BOND_SCALE, cell=None) -> np.ndarray:
    """(N, N) booleans: atoms closer than scale × (sum of covalent radii, Å); no self-bonds."""
    count = len(np.asarray(numbers))
    matrix = np.zeros((count, count), dtype=bool)
    i, j = bond_pairs(numbers, positions, scale, cell).T
    matrix[i, j] = matrix[j, i] = True
    return matrix


def bond_graph(numbers, positions, scale: float = TOPOLOGY_BOND_SCALE, cell=None) -> list[set[int]]:
    """Neighbour sets (0-based) of bond_matrix."""
    graph = [set() for _ in range(len(np.asarray(numbers)))]
    for i, j in bond_pairs(numbers, positions, scale, cell).tolist():
        graph[i].add(j)
        graph[j].add(i)
    return graph


def fragment_count(numbers, positions, scale: float = BREAKAGE_BOND_SCALE, cell=None) -> int:
    """Number of covalently bonded fragments (1 for an intact molecule); positions (N, 3) Å."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    count = len(np.asarray(numbers))
    i, j = bond_pairs(numbers, positions, scale, cell).T
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(count, count))
    return int(connected_components(graph, directed=False)[0])


def atom_label(numbers, index: int) -> str:
    """Element and 1-based index, as chemists and i-PI's xyz files count atoms: 'C59'."""
    from ase.data import chemical_symbols

    z = int(numbers[index])
    return f"{chemical_symbols[z] if 0 < z < len(chemical_symbols) else f'Z{z}'}{index + 1}"


class BondGuard:
    """Stops MD when a covalent bond of the reference structure is stretched beyond breaking.

    The bonds are those of the reference at ``bond_scale`` × the sum of covalent radii (default
    TOPOLOGY_BOND_SCALE, 1.2); ``check`` raises ModelBreakdown when any of them is longer than max_stretch × (sum of covalent
    radii), default BREAKAGE_BOND_SCALE (1.6, the criterion of fragment_count); 0 or None switches
    the guard off. Only the reference bonds are measured (O(bonds) per structure), so new bonds
    (a proton moving to another atom) are not followed: a reactive simulation needs the guard off.
    """

    def __init__(self, numbers, reference_positions, reference_cell=None,
                 max_stretch: float | None = BREAKAGE_BOND_SCALE, bond_scale: float = TOPOLOGY_BOND_SCALE):
        if max_stretch is not None and not max_stretch >= 0:
            raise UserError(f"max_bond_stretch must be >= 0 (× sum of covalent radii; 0 = no check), got {max_stretch}")
        self.numbers = np.asarray(numbers, dtype=np.int64)
        self.max_stretch = float(max_stretch or 0.0)
        self.pairs = bond_pairs(self.numbers, reference_positions, bond_scale, reference_cell)
        radii = covalent_radii(self.numbers)
        self.radius_sums = radii[self.pairs[:, 0]] + radii[self.pairs[:, 1]]  # (M,) Å
        self.limits = self.max_stretch * self.radius_sums                     # (M,) Å
        self._squared_limits = self.limits**2
        self._first, self._second = self.pairs[:, 0].copy(), self.pairs[:, 1].copy()

    @property
    def active(self) -> bool:
        return self.max_stretch > 0 and len(self.pairs) > 0

    def __len__(self) -> int:
        return len(self.pairs)

    def check(self, positions, cells=None) -> None:
        """positions (B, N, 3) or (N, 3) Å; cells (B, 3, 3) or (3, 3) rows in Å, or None (gas phase).
        Raises ModelBreakdown naming the most stretched bond (relative to its limit) of the request."""
        if not self.active:
            return
        vectors, squared = self._bond_vectors(positions)
        over = squared > self._squared_limits
        if over.any() and cells is not None:
            # Only now the minimum image: it is never longer than the raw vector, so a bond within
            # the limit passes either way, and molecules that i-PI keeps unwrapped skip the inverse.
            vectors = minimum_image(vectors, cells)  # (B, M, 3) @ (B, 3, 3): one cell per structure
            squared = np.einsum("bmk,bmk->bm", vectors, vectors)
            over = squared > self._squared_limits
        if over.any():
            self._raise(np.sqrt(squared), over)

    def over_limit(self, positions) -> np.ndarray:
        """(B,) bools: the structures of positions (B, N, 3) Å (gas phase) in which some bond is longer
        than its limit; all False when the guard is off."""
        positions = np.asarray(positions)
        if not self.active:
            return np.zeros(len(positions), dtype=bool)
        return np.any(self._bond_vectors(positions)[1] > self._squared_limits, axis=1)

    def _bond_vectors(self, positions):
        """Bond vectors (B, M, 3) Å and squared lengths (B, M) Å² of positions (B, N, 3) or (N, 3)."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim == 2:
            positions = positions[None]
        vectors = np.take(positions, self._second, axis=1)  # (B, M, 3); np.take: ~1.5x faster than [:, index] here
        vectors -= np.take(positions, self._first, axis=1)
        return vectors, np.einsum("bmk,bmk->bm", vectors, vectors)

    def _raise(self, lengths: np.ndarray, over: np.ndarray) -> None:
        ratio = np.where(over, lengths / self.radius_sums, -np.inf)
        structure, bond = np.unravel_index(np.argmax(ratio), ratio.shape)
        i, j = self.pairs[bond]
        others = int(over.sum()) - 1
        more = f"; {others} more bond{'s' if others > 1 else ''} over the limit in this request" if others else ""
        raise ModelBreakdown(
            f"bond {atom_label(self.numbers, i)}–{atom_label(self.numbers, j)} (1-based) of structure {structure + 1} "
            f"in this request is {lengths[structure, bond]:.2f} Å long, above the limit of {self.limits[bond]:.2f} Å "
            f"({self.max_stretch:g} × the sum of covalent radii, --max-bond-stretch{more}): the molecule is breaking "
            "apart, a geometry the model was not trained for. Stopped rather than integrate it; resume from an earlier "
            "checkpoint with a smaller time step or lower temperature, or retrain the model on such geometries "
            "(--max-bond-stretch 0 disables this check)")
