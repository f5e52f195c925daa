"""``so3k analyze RUN_DIR``: plots and a markdown summary of a PLUMED/REMD sampling run."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    from ..sampling.analysis.end_states import DEFAULT_COUNT, DEFAULT_REFERENCE_DTYPE
    from ..sampling.analysis.energy_error_profile import DEFAULT_FRAMES as DEFAULT_PROFILE_FRAMES
    from ..sampling.analysis.free_energy import DEFAULT_BURN_IN, DEFAULT_CUTOFF_KJMOL
    from ..sampling.analysis.uncertainty import DEFAULT_THRESHOLD_MEV_PER_A

    parser = subparsers.add_parser(
        "analyze", help="demultiplex REMD, end-to-end distance, Rg, helix fraction, FES from HILLS, reweighted FES "
                        "with a two-halves error and named basins, Ramachandran, committee uncertainty")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="folder with i-PI outputs (*.out, *.pos_0.xyz) and HILLS/COLVAR")
    parser.add_argument("--out", default=None, help="output folder (default RUN_DIR/analysis)")
    parser.add_argument("--uncertainty-threshold", type=float, default=DEFAULT_THRESHOLD_MEV_PER_A, metavar="MEV_PER_A",
                        help="committee runs: flag frames whose largest per-atom force spread exceeds this, in meV/Å "
                             "(default %(default)g meV/Å)")
    parser.add_argument("--burn-in", type=float, default=DEFAULT_BURN_IN, metavar="FRACTION",
                        help="metadynamics: fraction of the COLVAR frames dropped at the start before the reweighted "
                             "free energy (default %(default)g)")
    parser.add_argument("--fes-cutoff", type=float, default=DEFAULT_CUTOFF_KJMOL, metavar="KJ_PER_MOL",
                        help="metadynamics: the two halves of the run are compared where the free energy is below "
                             "this, in kJ/mol (default %(default)g kJ/mol)")
    parser.add_argument("--trajectories", action="store_true",
                        help="also write the frames of each temperature, in time order, as "
                             "analysis/trajectory_<T>K.extxyz (Å): i-PI's REMD trajectories follow configurations, "
                             "these follow temperatures (e.g. to start walkers from the 300 K frames)")
    parser.add_argument("--reference", default=None, metavar="MODEL",
                        help="check the end states against this model (e.g. so3lr:DIR; gas phase, all pairs): the most "
                             "compact and most extended frames of the lowest temperature, as sampled and relaxed "
                             "(end_states.json/.png), and the run model's energy error along the end-to-end distance "
                             "on frames spread over the run (energy_error_profile.json/.png)")
    parser.add_argument("--model", default=None, metavar="MODEL",
                        help="with --reference: the run's own model (default: the model in the study's study.json)")
    parser.add_argument("--end-states", type=int, default=DEFAULT_COUNT, metavar="K",
                        help="with --reference: frames per end state (default %(default)d; 0 = none)")
    parser.add_argument("--profile-frames", type=int, default=DEFAULT_PROFILE_FRAMES, metavar="N",
                        help="with --reference: frames of the energy-error profile, spread over the lowest temperature "
                             "after the burn-in (default %(default)d; 0 = none)")
    parser.add_argument("--reference-dtype", default=DEFAULT_REFERENCE_DTYPE, choices=("float32", "float64"),
                        help="with --reference: its precision (default %(default)s)")
    parser.set_defaults(func=run_analyze, runs_model=True)


def run_analyze(args) -> int:
    from ..sampling.analysis.report import analyze
    from ..errors import UserError

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder")
    summary = analyze(run_dir, Path(args.out) if args.out else None, args.uncertainty_threshold,
                      burn_in=args.burn_in, fes_cutoff=args.fes_cutoff, reference=args.reference, model=args.model,
                      end_state_count=args.end_states, reference_dtype=args.reference_dtype,
                      profile_frames=args.profile_frames, trajectories=args.trajectories,
                      report=lambda line: print(line, file=sys.stderr, flush=True))
    print(summary.read_text())
    print(f"plots and summary in {summary.parent}")
    return 0
