"""Replica exchange + well-tempered metadynamics folding of Ac-Ala15-NHMe from the extended chain.

    python examples/ala15_folding/run.py [--quick] [--model MODEL] [--out DIR] [--backend socket|direct]

Temperatures (K) are geometric between 300 and 450; each temperature has its own METAD on the
end-to-end distance (carbonyl C of acetyl cap and of Ala15, Å), written by so3k_driver.plumed_inputs.
Writes DIR/run (i-PI + PLUMED outputs) and DIR/run/analysis (PNG plots, summary.md).

Modes (measured on 2 shared CPU cores, random-weight 162-atom SO3krates, ≈ 0.1 s per replica-step):
  --quick   4 replicas × 100 steps of 0.5 fs, a hill every 10 steps: 1–2 minutes incl. ≈ 30 s start-up
            (--backend direct ≈ 0.45 s/step, socket ≈ 1.1 s/step under load).
  full      8 replicas × 200 000 steps of 1 fs (200 ps), a hill every 500 steps: ≈ 8 × 200 000 × 0.1 s
            ≈ 45 h on 2 CPU cores (estimate, not run); a GPU is the realistic target. Folding needs a physical model
            (the bundled default or so3lr:DIR), not random weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from so3k_driver import plumed_inputs, sampling_inputs, sampling_run
from so3k_driver.analysis.report import analyze

HERE = Path(__file__).resolve().parent


def settings(quick: bool, steps: int | None):
    if quick:
        md = sampling_inputs.SamplingSettings(temperatures=[float(t) for t in np.round(np.geomspace(300, 450, 4), 1)], steps=100,
                                              timestep_fs=0.5, exchange_stride=10, output_stride=5)
        metad = plumed_inputs.MetadSettings(pace=10, height=1.0, sigma=0.5, biasfactor=10, colvar_stride=5)
    else:
        md = sampling_inputs.SamplingSettings(temperatures=[float(t) for t in np.round(np.geomspace(300, 450, 8), 1)],
                                              steps=200_000, timestep_fs=1.0, exchange_stride=100, output_stride=500)
        metad = plumed_inputs.MetadSettings(pace=500, height=1.2, sigma=0.5, biasfactor=10, colvar_stride=100)
    if steps:
        md.steps = steps
    return md, metad


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="short smoke run (about a minute)")
    parser.add_argument("--model", default="default", help="FILE.so3k, mlff:DIR, so3lr:DIR or 'default'")
    parser.add_argument("--out", default=str(HERE / "output"), help="output folder")
    parser.add_argument("--backend", choices=["socket", "direct"], default="socket",
                        help="socket: so3k run (i-PI + so3k serve); direct: model inside i-PI")
    parser.add_argument("--steps", type=int, help="override the number of MD steps")
    parser.add_argument("--structure", default=str(plumed_inputs.bundled_structure("Ac-Ala15-NHMe_ext.xyz")))
    args = parser.parse_args(argv)
    md, metad = settings(args.quick, args.steps)
    run_dir = Path(args.out) / "run"
    sampling_run.prepare_remd_metad(run_dir, args.structure, args.model, md, metad, batch_size=len(md.temperatures),
                                    backend=args.backend)
    print(f"REMD+METAD: {len(md.temperatures)} replicas {md.temperatures} K, {md.steps} steps of {md.timestep_fs} fs "
          f"in {run_dir}", flush=True)
    wall = sampling_run.run(run_dir)
    summary = analyze(run_dir)
    print(summary.read_text())
    print(f"wall time {wall:.0f} s for {md.steps} steps × {len(md.temperatures)} replicas "
          f"({wall / md.steps:.2f} s/step); plots in {summary.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
