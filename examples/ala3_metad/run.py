"""Well-tempered metadynamics of Ac-Ala3-NHMe on the central residue's backbone torsions (φ2, ψ2).

    python examples/ala3_metad/run.py [--quick] [--model MODEL] [--out DIR] [--backend socket|direct]
    python examples/ala3_metad/run.py --resume [--steps TOTAL] [--out DIR]     # continue / extend a run

Writes DIR/run (i-PI + PLUMED outputs, COLVAR/HILLS in rad and kJ/mol) and DIR/run/analysis with
the free-energy surface (free_energy.png, kJ/mol over degrees), the Ramachandran plot and summary.md.
Modes (2 CPU cores, 42 atoms): --quick 300 steps ≈ 30 s; full 100 000 steps of 0.5 fs (50 ps) ≈ 1–2 h.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ase.io

from so3k_driver.sampling import inputs as sampling_inputs, plumed_inputs, run as sampling_run
from so3k_driver.sampling.analysis.report import analyze
from so3k_driver.errors import UserError

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default="default", help="FILE.so3k, mlff:DIR, so3lr:DIR or 'default'")
    parser.add_argument("--out", default=str(HERE / "output"))
    parser.add_argument("--backend", choices=["socket", "direct"], default="socket")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--resume", action="store_true",
                        help="continue OUT/run from its RESTART or last checkpoint (--steps: the new total); "
                             "without it a previous run is moved to OUT/run.bck.N")
    args = parser.parse_args(argv)
    run_dir = Path(args.out) / "run"
    if args.resume:
        wall = sampling_run.run(run_dir, resume=True, total_steps=args.steps)
    else:
        steps = args.steps or (300 if args.quick else 100_000)
        structure = plumed_inputs.bundled_structure("Ac-Ala3-NHMe_ext.xyz")
        atoms = ase.io.read(structure)
        metad = plumed_inputs.MetadSettings(pace=10 if args.quick else 250, height=1.2, sigma=0.35, biasfactor=6,
                                            colvar_stride=5 if args.quick else 50)
        text = plumed_inputs.backbone_torsion_metad(atoms.numbers, atoms.positions, metad)
        md = sampling_inputs.SamplingSettings(temperatures=[300.0], steps=steps, output_stride=metad.colvar_stride)
        backup = sampling_run.set_aside(run_dir)
        if backup:
            print(f"previous run moved to {backup}", flush=True)
        sampling_run.prepare_metad(run_dir, structure, args.model, md, text, backend=args.backend)
        wall = sampling_run.run(run_dir)
    summary = analyze(run_dir)
    print(summary.read_text())
    print(f"wall time {wall:.0f} s; free-energy surface in {summary.parent / 'free_energy.png'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        sys.exit(f"{Path(__file__).parent.name}: {error}")
