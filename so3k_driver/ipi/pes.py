"""SO3krates/SO3LR as an i-PI Python PES, for ``i-pi-py_driver`` or ``<ffdirect>``.

    i-pi-py_driver -m custom -P $(python -c 'import so3k_driver.ipi.pes as m; print(m.__file__)') \\
        -u -a ADDRESS -o model=mlff:/path/to/model,structure=ala3.xyz[,pbc=true,dtype=float64,device=gpu]

Arguments (all strings, from ``-o``): model (required), structure (required: elements, since i-PI
sends positions only), pbc (default false: gas phase, zero virial), dtype, device, lr_cutoff (Å),
total_charge (e), and by keyword dispersion_damping (Å), unpaired_electrons, max_force (eV/Å, 0 = no
check), max_bond_stretch (× sum of covalent radii, 0 = no check; the bonds are those of the first
structure i-PI sends, since the structure argument gives the elements only). Batched calls
(``batch_size`` > 1) get lists and are evaluated in one model call.
Units at this interface are atomic (bohr, hartree), as i-PI passes them.
"""

from __future__ import annotations

import numpy as np
from ipi.pes.dummy import Dummy_driver

from so3k_driver.ipi.compute import DEFAULT_MAX_BOND_STRETCH, DEFAULT_MAX_FORCE, lr_cutoff_from_pes, make_compute
from so3k_driver.ipi.structures import read_numbers

__DRIVER_NAME__ = "so3k"
__DRIVER_CLASS__ = "SO3kratesDriver"

TRUE = ("1", "true", "yes", "on")


class SO3kratesDriver(Dummy_driver):
    def __init__(self, model=None, structure=None, pbc="false", dtype=None, device=None, lr_cutoff="12",
                 total_charge="0", verbose=False, *args, dispersion_damping="2", unpaired_electrons="0",
                 max_force=str(DEFAULT_MAX_FORCE), max_bond_stretch=str(DEFAULT_MAX_BOND_STRETCH), **kwargs):
        if model is None or structure is None:
            raise ValueError("so3k PES needs model=... and structure=... (e.g. -o model=mlff:DIR,structure=ala3.xyz)")
        from so3k_driver.evaluation.potential import Potential

        potential = Potential.load(model, dtype=dtype, device=device, lr_cutoff=lr_cutoff_from_pes(lr_cutoff),
                                   dispersion_damping=float(dispersion_damping))
        self.potential = potential
        self._compute = make_compute(potential, read_numbers(structure), periodic=str(pbc).lower() in TRUE,
                                     total_charge=float(total_charge), unpaired_electrons=float(unpaired_electrons),
                                     max_force=float(max_force), max_bond_stretch=float(max_bond_stretch))
        super().__init__(verbose, *args, **kwargs)

    def compute_structure(self, cell, pos):
        return self.compute(cell, pos)

    def compute(self, cell, pos, pad_to: int | None = None):
        batched = isinstance(cell, list)
        cells = np.asarray(cell if batched else [cell], dtype=np.float64).reshape(-1, 3, 3)
        positions = np.asarray(pos if batched else [pos], dtype=np.float64).reshape(len(cells), -1, 3)
        energies, forces, virials, extras = self._compute(cells, positions, pad_to=pad_to)
        results = [(float(e), f, v, x) for e, f, v, x in zip(energies, forces, virials, extras)]
        return results if batched else results[0]
