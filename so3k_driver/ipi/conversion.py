"""The one place where i-PI's atomic units meet the package's Å/eV units.

i-PI sends positions and the cell in bohr, with the cell ``h`` holding lattice vectors as
COLUMNS; it expects energies in hartree, forces in hartree/bohr and the virial in hartree
(i-PI's convention, as in its ASE PES: ``(-stress * volume).T``).
"""

from __future__ import annotations

import numpy as np

from ..units import ANGSTROM_IN_BOHR, BOHR_IN_ANGSTROM, EV_IN_HARTREE, EV_PER_ANGSTROM_IN_HARTREE_PER_BOHR


def positions_to_angstrom(positions_bohr: np.ndarray) -> np.ndarray:
    """(…, N, 3) bohr -> Å."""
    return np.asarray(positions_bohr, dtype=np.float64) * BOHR_IN_ANGSTROM


def cells_to_angstrom_rows(h_bohr: np.ndarray) -> np.ndarray:
    """i-PI cell matrices (…, 3, 3) in bohr, vectors as columns -> Å, vectors as rows."""
    return np.swapaxes(np.asarray(h_bohr, dtype=np.float64), -1, -2) * BOHR_IN_ANGSTROM


def energies_to_hartree(energy_ev: np.ndarray) -> np.ndarray:
    return np.asarray(energy_ev, dtype=np.float64) * EV_IN_HARTREE


def forces_to_atomic(forces_ev_per_angstrom: np.ndarray) -> np.ndarray:
    """eV/Å -> hartree/bohr."""
    return np.asarray(forces_ev_per_angstrom, dtype=np.float64) * EV_PER_ANGSTROM_IN_HARTREE_PER_BOHR


def virials_to_hartree(virial_ev: np.ndarray) -> np.ndarray:
    """(…, 3, 3) virial in eV (= -stress * volume, ASE layout) -> hartree, transposed as i-PI expects."""
    return np.swapaxes(np.asarray(virial_ev, dtype=np.float64), -1, -2) * EV_IN_HARTREE


def dipoles_to_atomic(dipole_e_angstrom: np.ndarray) -> np.ndarray:
    """e·Å -> e·bohr (extras are sent in atomic units too)."""
    return np.asarray(dipole_e_angstrom, dtype=np.float64) * ANGSTROM_IN_BOHR
