"""What PLUMED costs per replica and MD step for each metadynamics CV of `so3k sample init`, per kernel.

    python bench/bench_plumed_kernel.py KERNEL [KERNEL ...] [--steps 1000] [--rounds 3] [--json OUT]

Each kernel (a libplumedKernel.so; `wheel` names the hillclimber wheel's own) runs in a process of its
own, rounds alternating between kernels. In each, the PLUMED input `so3k sample init --metad CV` writes
(Ac-Ala15-NHMe, or Ac-Ala3-NHMe for `backbone`) is driven as i-PI's <ffplumed> drives it every step:
setStep/positions/forces + performCalcNoUpdate + getBias (the bias force), then getBias + update +
performCalcNoForces + getBias (i-PI's mtd_update with compute_work). Hills are deposited at the CV's
default pace as in a study. Printed: ms per replica and step, median over rounds, and each kernel's
ratio to the first one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CVS = {"helix-torsions": "Ac-Ala15-NHMe_ext.xyz", "helix": "Ac-Ala15-NHMe_folded.xyz",
       "helix-form": "Ac-Ala15-NHMe_folded.xyz", "end-to-end": "Ac-Ala15-NHMe_ext.xyz",
       "backbone": "Ac-Ala3-NHMe_ext.xyz"}


def time_kernel(steps: int) -> dict[str, float]:
    """In this process (PLUMED_KERNEL set by the parent): ms per step for every CV."""
    import ase.io
    import numpy as np
    import plumed

    from so3k_driver.sampling.plumed_inputs import bundled_structure, metad_input
    from so3k_driver.sampling.settings import MetadSettings

    result = {}
    for cv, structure in CVS.items():
        atoms = ase.io.read(bundled_structure(structure))
        n = len(atoms)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "plumed.dat"
            path.write_text(metad_input(atoms.numbers, atoms.positions, MetadSettings(cv=cv, pace=100), 300.0))
            cwd = os.getcwd()
            os.chdir(folder)  # PLUMED opens HILLS and COLVAR at init: in the temporary folder, not here
            engine = plumed.Plumed()
            for key, value in (("setMDEngine", "python"), ("setNatoms", n), ("setTimestep", 0.002),
                               ("setMDLengthUnits", 0.1), ("setMDEnergyUnits", 96.485), ("setMDTimeUnits", 1.0),
                               ("setPlumedDat", str(path)), ("setLogFile", str(Path(folder) / "log"))):
                engine.cmd(key, value)
            engine.cmd("init")
            masses, charges, box = np.ones(n), np.zeros(n), 100.0 * np.eye(3)
            rng = np.random.default_rng(0)
            bias = np.zeros(1)
            try:
                def step(k: int) -> None:
                    positions = atoms.positions + 0.02 * rng.normal(size=atoms.positions.shape)
                    forces, virial = np.zeros((n, 3)), np.zeros((3, 3))
                    for key, value in (("setStep", k), ("setCharges", charges), ("setMasses", masses),
                                       ("setBox", box), ("setPositions", positions), ("setForces", forces),
                                       ("setVirial", virial)):
                        engine.cmd(key, value)
                    engine.cmd("prepareCalc")
                    engine.cmd("performCalcNoUpdate")
                    engine.cmd("getBias", bias)
                    engine.cmd("getBias", bias)
                    engine.cmd("setStep", k)
                    engine.cmd("update")
                    engine.cmd("performCalcNoForces")
                    engine.cmd("getBias", bias)

                for k in range(50):
                    step(k)
                start = time.perf_counter()
                for k in range(50, 50 + steps):
                    step(k)
                result[cv] = 1e3 * (time.perf_counter() - start) / steps
            finally:
                os.chdir(cwd)
                engine.finalize()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kernels", nargs="+", help="paths of libplumedKernel.so, or `wheel`")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_kernel(args.steps)))
        return
    import plumed

    paths = [str(plumed.BUNDLED_KERNEL_PATH) if k == "wheel" else os.path.abspath(k) for k in args.kernels]
    times: dict[str, dict[str, list[float]]] = {p: {cv: [] for cv in CVS} for p in paths}
    for round_ in range(args.rounds):
        for path in paths:
            child = subprocess.run([sys.executable, __file__, "--child", "--steps", str(args.steps), path],
                                   env=dict(os.environ, PLUMED_KERNEL=path), capture_output=True, text=True,
                                   check=True)
            for cv, ms in json.loads(child.stdout.strip().splitlines()[-1]).items():
                times[path][cv].append(ms)
        print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)
    first = paths[0]
    labels = [k[-18:] for k in args.kernels]
    print(f"{'cv':16s}" + "".join(f"  {label:>18s}" for label in labels) + "   (ms per replica and step)")
    table = {}
    for cv in CVS:
        medians = [statistics.median(times[p][cv]) for p in paths]
        print(f"{cv:16s}" + "".join(f"  {m:18.3f}" for m in medians)
              + "".join(f"   x{medians[0] / m:5.1f}" for m in medians[1:]))
        table[cv] = {p: {"median_ms": statistics.median(times[p][cv]), "rounds_ms": times[p][cv]} for p in paths}
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": args.steps, "rounds": args.rounds, "reference": first,
                                               "ms_per_replica_step": table}, indent=1) + "\n")


if __name__ == "__main__":
    main()
