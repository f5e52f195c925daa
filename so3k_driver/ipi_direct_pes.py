"""In-process SO3krates PES for i-PI's ``<ffdirect><pes>custom</pes>`` (no socket, no driver process).

i-PI loads this file by path and passes ``<parameters>{config: /path/pes.json}</parameters>``; the JSON
holds ``model`` (a Potential spec), ``template`` (structure file giving the atomic numbers) and optional
``dtype``/``batch_size``. Gas phase: the cell is ignored and the virial is zero. i-PI works in atomic
units (bohr, hartree); the Potential in Å and eV.
"""

from __future__ import annotations

import json

import numpy as np

from ipi.pes.dummy import Dummy_driver

__DRIVER_NAME__ = "so3k_direct"
__DRIVER_CLASS__ = "SO3kDirectPES"

BOHR_IN_ANGSTROM = 0.529177210903
HARTREE_IN_EV = 27.211386245988


class SO3kDirectPES(Dummy_driver):
    def __init__(self, config: str, *args, **kwargs):
        import ase.io

        from so3k_driver.potential import Potential

        with open(config) as handle:
            settings = json.load(handle)
        self.numbers = ase.io.read(settings["template"]).numbers
        self.batch_size = int(settings.get("batch_size", 1))
        self.potential = Potential.load(settings["model"], dtype=settings.get("dtype"))
        super().__init__(*args, **kwargs)

    def _evaluate(self, positions_bohr: list[np.ndarray]):
        count = len(positions_bohr)
        padded = positions_bohr + [positions_bohr[-1]] * (max(self.batch_size, count) - count)  # constant shape
        positions = np.stack(padded).reshape(len(padded), -1, 3) * BOHR_IN_ANGSTROM
        result = self.potential.evaluate(self.numbers, positions)
        energy = result.energy[:count] / HARTREE_IN_EV
        forces = result.forces[:count] * (BOHR_IN_ANGSTROM / HARTREE_IN_EV)
        return [(float(e), f.reshape(-1), np.zeros((3, 3)), "") for e, f in zip(energy, forces)]

    def compute_structure(self, cell, pos):
        return self._evaluate([np.asarray(pos)])[0]

    def compute(self, cell, pos):
        try:
            if isinstance(cell, list):
                return self._evaluate([np.asarray(p) for p in pos])
            return self.compute_structure(cell, pos)
        except Exception as error:
            # i-PI calls this from its polling thread: an exception there only ends that thread and
            # i-PI waits forever. Ask i-PI to stop instead (it writes RESTART and exits).
            from ipi.utils.softexit import softexit

            softexit.trigger(status="bad", message=f"so3k direct PES: {type(error).__name__}: {error}")
            raise
