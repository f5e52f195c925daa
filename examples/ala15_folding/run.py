"""Replica exchange + well-tempered metadynamics folding of Ac-Ala15-NHMe from the extended chain.

    python examples/ala15_folding/run.py [--quick] [--model MODEL] [--out DIR] [--backend socket|direct]
    python examples/ala15_folding/run.py --resume [--steps TOTAL] [--out DIR]     # continue / extend a run

Temperatures (K) are geometric between 300 and 450; each temperature has its own METAD on the
end-to-end distance (carbonyl C of acetyl cap and of Ala15, Å), written by so3k_driver.sampling.plumed_inputs.
Writes DIR/run (i-PI + PLUMED outputs) and DIR/run/analysis (PNG plots, summary.md).

Modes (bundled default model, 162 atoms, 2 CPU cores):
  --quick   4 replicas × 100 steps of 0.5 fs, a hill every 10 steps: ≈ 30 s including start-up.
  full      8 replicas × 200 000 steps of 1 fs (200 ps), a hill every 500 steps. Measured: 0.20–0.25 s
            per step (all 8 replicas), so ≈ 11–14 h on 2 CPU cores; run it in pieces with --resume.
            The first 20.5 ps (1 h 18 min) took the end-to-end distance from 54.7 Å to 41–48 Å with no
            helix yet, and one configuration blew apart at 450 K after 19 ps: the bundled model was
            trained on Ac-Ala3-NHMe only. The driver stops a run when forces leave the physical range
            (so3k serve --max-force) and so3k analyze flags broken configurations. Folding needs a
            model made for it (so3lr:DIR).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from so3k_driver.sampling import inputs as sampling_inputs, plumed_inputs, run as sampling_run
from so3k_driver.sampling.analysis.report import analyze
from so3k_driver.errors import UserError

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
    parser.add_argument("--steps", type=int, help="override the number of MD steps (with --resume: the new total)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in OUT/run from its RESTART or last checkpoint (i-PI appends "
                             "to the outputs, PLUMED extends the HILLS); without it a previous run is moved "
                             "to OUT/run.bck.N")
    parser.add_argument("--structure", default=str(plumed_inputs.bundled_structure("Ac-Ala15-NHMe_ext.xyz")))
    args = parser.parse_args(argv)
    run_dir = Path(args.out) / "run"
    if args.resume:
        restart = sampling_run.latest_restart(run_dir)
        first_step = sampling_run.restart_step(restart) if restart else 0
        print(f"REMD+METAD: resuming {run_dir} from step {first_step} ({restart}), "
              f"to {args.steps or 'the planned'} total steps", flush=True)
        wall = sampling_run.run(run_dir, resume=True, total_steps=args.steps)
        steps = sampling_run.restart_step(sampling_run.latest_restart(run_dir)) - first_step
    else:
        md, metad = settings(args.quick, args.steps)
        backup = sampling_run.set_aside(run_dir)
        if backup:
            print(f"previous run moved to {backup}", flush=True)
        sampling_run.prepare_remd_metad(run_dir, args.structure, args.model, md, metad,
                                        batch_size=len(md.temperatures), backend=args.backend)
        print(f"REMD+METAD: {len(md.temperatures)} replicas {md.temperatures} K, {md.steps} steps of "
              f"{md.timestep_fs} fs in {run_dir}", flush=True)
        wall = sampling_run.run(run_dir)
        steps = md.steps
    summary = analyze(run_dir)
    print(summary.read_text())
    replicas = len(json.loads((run_dir / "temperatures.json").read_text())["temperatures_K"])
    print(f"wall time {wall:.0f} s for {steps} steps × {replicas} replicas "
          f"({wall / max(steps, 1):.2f} s/step); plots in {summary.parent}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        sys.exit(f"{Path(__file__).parent.name}: {error}")
