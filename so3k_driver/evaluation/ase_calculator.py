"""ASE calculator over :class:`so3k_driver.evaluation.potential.Potential` (energy eV, forces eV/Å, stress eV/Å^3)."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes


class SO3kCalculator(Calculator):
    """``SO3kCalculator(model='default' | 'file.so3k' | 'mlff:DIR' | 'so3lr:DIR', dtype=..., ...)``
    or ``SO3kCalculator(potential=Potential(...))``. Extra keyword arguments go to ``Potential.load``.

    Stress is given in ASE's Voigt order (xx, yy, zz, yz, xz, xy) for periodic systems. SO3LR
    outputs are exposed as ``charges`` (e), ``dipole`` (e·Å) and ``hirshfeld_ratios``.
    The total charge and unpaired electrons are read from ``atoms.info`` ('charge', 'unpaired_electrons').
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "charges", "dipole", "hirshfeld_ratios"]

    def __init__(self, model: str = "default", potential=None, **kwargs):
        super().__init__()
        if potential is None:
            from .potential import Potential

            potential = Potential.load(model, **kwargs)
        self.potential = potential

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        info = self.atoms.info
        results = self.potential.evaluate_atoms(
            self.atoms, total_charge=info.get("charge", 0.0), unpaired_electrons=info.get("unpaired_electrons", 0.0)
        )
        self.results["energy"] = self.results["free_energy"] = float(results.energy[0])
        self.results["forces"] = results.forces[0].copy()
        if results.stress is not None:
            s = results.stress[0]
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        for key, value in results.extras.items():
            self.results[key] = value[0].copy()
