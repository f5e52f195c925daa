"""Does preconditioning cut the steps of a minimisation? ASE's LBFGS against ASE's PreconLBFGS (Exp
preconditioner, Armijo line search) on the same Ac-Ala3-NHMe frames, bundled model in float64
(PreconLBFGS's line search needs energies finer than float32 gives at -1767 eV), fmax 0.05 eV/Å.
Counts force calls (one per model evaluation, line-search trials included). A measurement, not a test.

    python docs/results/ala3_minima/precon_ase.py FRAMES.xyz   # every 20th of the first 240, 12 frames

The frames: every 129th frame of the SO3LR phi/psi metadynamics (runs/ala3_fes/so3lr_300K/sim.pos_0.xyz),
as in throughput_2026-12-02.json. Units: eV, eV/Å.
"""

import sys

import ase.io
import numpy as np
from ase.optimize import LBFGS
from ase.optimize.precon import Exp, PreconLBFGS

from so3k_driver.evaluation.ase_calculator import SO3kCalculator

frames = ase.io.read(sys.argv[1], index=":")[::20][:12]
calc = SO3kCalculator("default", dtype="float64")
calls = [0]
evaluate = calc.calculate


def counted(*args, **kwargs):
    calls[0] += 1
    return evaluate(*args, **kwargs)


calc.calculate = counted
optimisers = {
    "lbfgs": lambda atoms: LBFGS(atoms, logfile=None),
    "precon_exp": lambda atoms: PreconLBFGS(atoms, precon=Exp(), use_armijo=True, logfile=None),
    "precon_exp_A1": lambda atoms: PreconLBFGS(atoms, precon=Exp(A=1.0), use_armijo=True, logfile=None),
}
results = {}
for name, make in optimisers.items():
    counts, energies = [], []
    for frame in frames:
        # the Exp preconditioner's neighbour search needs a cell: a 40 Å box, not periodic
        atoms = frame.copy()
        atoms.cell, atoms.pbc, atoms.calc = [40, 40, 40], False, calc
        calls[0] = 0
        make(atoms).run(fmax=0.05, steps=2000)
        counts.append(calls[0])
        energies.append(atoms.get_potential_energy())
    results[name] = (counts, energies)
    print(name, "force calls mean", np.mean(counts), "median", np.median(counts), "max", max(counts), flush=True)
reference = np.array(results["lbfgs"][1])
for name, (counts, energies) in results.items():
    print(name, "E - E_lbfgs (meV):", np.round(1e3 * (np.array(energies) - reference), 1))
