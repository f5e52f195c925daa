"""``so3k sample init`` (prepare a study folder) and ``so3k sample run`` (run or continue it)."""

from __future__ import annotations

import shlex
import sys

from .model_commands import lr_cutoff_from_flag


def add_parser(subparsers) -> None:
    from ..io.model_files import MODEL_SPECS

    from ..sampling.settings import BACKENDS, DEFAULT_METAD_SIGMA, METAD_CVS, MetadSettings, StudySettings

    study = StudySettings.__dataclass_fields__
    metad = MetadSettings()
    sample = subparsers.add_parser(
        "sample", help="sampling studies: MD or replica exchange (REMD) with PLUMED metadynamics through i-PI",
        description="Prepare a study folder with 'so3k sample init', run it (in pieces) with "
                    "'so3k sample run', analyse it with 'so3k analyze'.")
    commands = sample.add_subparsers(dest="sample_command", required=True, metavar="COMMAND")

    init = commands.add_parser(
        "init", help="prepare a study folder: study.json, init.xyz, PLUMED inputs, input.xml",
        description="Write a study into --out: one temperature = NVT, several = replica exchange; "
                    "--metad adds well-tempered metadynamics at each temperature.")
    init.add_argument("structure", metavar="STRUCTURE",
                      help="starting structure (any file ASE reads; Å). A file of several frames (e.g. frames of an "
                           "earlier run) starts the S replicas or walkers from S frames spread evenly over it, first "
                           "and last included (S frames: one each); one system starts from the last frame")
    init.add_argument("--model", required=True, help="model: " + MODEL_SPECS)
    init.add_argument("--temperatures", required=True, metavar="K",
                      help="temperatures in K: 300 (NVT), 300,340,385 or 300:450:8 (8 geometric from 300 to 450 K; REMD)")
    init.add_argument("--steps", type=int, required=True, metavar="N", help="total MD steps")
    init.add_argument("--walkers", type=int, default=study["walkers"].default, metavar="N",
                      help="metadynamics walkers at the one temperature, building one bias together (PLUMED's "
                           "multiple walkers; evaluated in one model call per step); default %(default)s")
    init.add_argument("--out", required=True, metavar="DIR", help="the study folder (must be empty unless --force)")
    init.add_argument("--metad", choices=METAD_CVS, default="end-to-end",
                      help="metadynamics CV: end-to-end (distance of the first and last carbonyl C, Å), "
                           "backbone (phi/psi of the central residue, rad), helix (smooth count of i→i+4 "
                           "backbone H-bonds O···H-N, switch midpoint 2.5 Å), helix-form (that count minus the i→i+3 one: "
                           "α against 3₁₀ helix, for runs started from helices), helix-torsions (PLUMED's ALPHABETA: "
                           "Σ ½(1 + cos(θ − θ_α)) over every backbone φ and ψ, 0 to 2 × residues; it pushes an "
                           "extended chain, where the H-bond count has no force yet) or none (default end-to-end)")
    init.add_argument("--timestep", type=float, default=study["timestep_fs"].default, metavar="FS",
                      help="MD time step in fs (default %(default)s fs)")
    init.add_argument("--thermostat-tau", type=float, default=study["thermostat_tau_fs"].default, metavar="FS",
                      help="Langevin thermostat time constant in fs (default %(default)s fs)")
    init.add_argument("--exchange-stride", type=int, default=study["exchange_stride"].default, metavar="N",
                      help="i-PI's replica-exchange stride: every pair of replicas is tried with "
                           "probability 1/N per MD step (default %(default)s)")
    init.add_argument("--output-stride", type=int, default=study["output_stride"].default, metavar="N",
                      help="MD steps between trajectory frames and property lines (default %(default)s)")
    init.add_argument("--metad-height", type=float, default=metad.height, metavar="KJ_PER_MOL",
                      help="initial hill height in kJ/mol (default %(default)s kJ/mol)")
    init.add_argument("--metad-sigma", type=float, default=None, metavar="WIDTH",
                      help="hill width in the CV's unit (default " + ", ".join(
                          f"{value:g} for {cv}" for cv, value in DEFAULT_METAD_SIGMA.items() if cv != "none") + ")")
    init.add_argument("--metad-pace", type=int, default=metad.pace, metavar="N",
                      help="MD steps between hills (default %(default)s)")
    init.add_argument("--metad-bias-factor", type=float, default=metad.bias_factor, metavar="GAMMA",
                      help="well-tempered bias factor, > 1 (default %(default)s)")
    init.add_argument("--colvar-stride", type=int, default=None, metavar="N",
                      help="MD steps between COLVAR lines (default: the output stride)")
    init.add_argument("--backend", choices=BACKENDS, default="socket",
                      help="socket: i-PI + so3k serve drivers; direct: the model inside i-PI (default socket)")
    init.add_argument("--dtype", choices=["float32", "float64"], default=None,
                      help="evaluation precision (default: the model's own)")
    init.add_argument("--hydrogen-mass", type=float, default=None, metavar="AMU",
                      help="give every hydrogen this mass in amu, e.g. 4 with --timestep 2 (default: natural "
                           "masses). Configurational averages do not depend on masses; dynamics do")
    init.add_argument("--lr-cutoff", type=float, default=0.0, metavar="A",
                      help="long-range cutoff in Å of SO3LR-type models (electrostatics, dispersion); default 0 = "
                           "all pairs, right for the gas phase; models without long-range terms ignore it")
    init.add_argument("--seed", type=int, default=study["seed"].default, help="i-PI random seed (default %(default)s)")
    init.add_argument("--force", action="store_true",
                      help="use --out even if it is not empty: the old content is moved to DIR.bck.N, never deleted")
    init.set_defaults(func=run_init)

    run = commands.add_parser(
        "run", help="run a study folder, or continue it from its newest restart",
        description="Run the study in DIR. When DIR holds a restart (RESTART or a numbered checkpoint "
                    "sim.restart_N) the run continues from the newest one, outputs cut back to its step; "
                    "--steps TOTAL extends it. Crashed drivers are started again; Ctrl-C stops cleanly "
                    "(i-PI writes RESTART) and prints the command that continues.")
    run.add_argument("folder", metavar="DIR", help="a folder prepared by 'so3k sample init'")
    run.add_argument("--steps", type=int, default=None, metavar="TOTAL",
                     help="total MD steps, counted from the start of the study (default: the planned total)")
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument("--model", default=None, metavar="MODEL",
                     help="continue with this model from the newest restart on (e.g. a student retrained on the "
                          "study's frames); study.json records the earlier model and the step of the change")
    run.add_argument("--auto-resume", type=int, default=0, metavar="N",
                     help="when i-PI itself crashes, resume from the newest checkpoint, at most N times (default 0)")
    run.set_defaults(func=run_run)

    status = commands.add_parser(
        "status", help="where a study stands: running or not, step, ps, speed, time left, a step's time (model "
                       "and the rest), CV ranges",
        description="Read a study folder without changing it (safe while it runs): whether a run holds it, the "
                    "step and ps per system reached, the newest restart, the speed of the running and the last "
                    "finished piece (ps per hour per system) and the time left at it, and per temperature the "
                    "COLVAR's last value and range over the run; for a capped peptide, each trajectory's newest frame "
                    "(residues with helical φ/ψ, α i→i+4 and 3₁₀ i→i+3 H-bonds, end-to-end distance in Å).")
    status.add_argument("folder", metavar="DIR", help="a folder prepared by 'so3k sample init'")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=run_status)


def study_settings(args):
    """StudySettings from the 'so3k sample init' flags."""
    import os

    from ..sampling.settings import MetadSettings, StudySettings, parse_temperatures

    metad = MetadSettings(cv=args.metad, height=args.metad_height, sigma=args.metad_sigma, pace=args.metad_pace,
                          bias_factor=args.metad_bias_factor,
                          colvar_stride=args.colvar_stride if args.colvar_stride is not None else args.output_stride)
    return StudySettings(
        structure=os.path.abspath(args.structure), model=args.model, temperatures=parse_temperatures(args.temperatures),
        steps=args.steps, timestep_fs=args.timestep, thermostat_tau_fs=args.thermostat_tau,
        exchange_stride=args.exchange_stride, output_stride=args.output_stride, metad=metad, backend=args.backend,
        dtype=args.dtype, seed=args.seed, hydrogen_mass=args.hydrogen_mass,
        lr_cutoff=lr_cutoff_from_flag(args.lr_cutoff), walkers=args.walkers)


def run_init(args) -> int:
    from ..sampling.run import prepare
    from ..sampling.settings import StudySettings

    settings = study_settings(args)
    backup = prepare(args.out, settings, force=args.force)
    if backup is not None:
        print(f"previous content of {args.out} moved to {backup}")
    kind = ("replica exchange" if settings.replica_exchange
            else f"NVT, {settings.walkers} walkers" if settings.walkers > 1 else "NVT")
    bias = f", metadynamics on {settings.metad.cv}" if settings.metad.enabled else ""
    print(f"prepared {args.out}: {kind} at {', '.join(f'{t:g}' for t in settings.temperatures)} K{bias}, "
          f"{settings.steps} steps of {settings.timestep_fs:g} fs ({settings.backend} backend"
          + (f", hydrogens {settings.hydrogen_mass:g} amu" if settings.hydrogen_mass is not None else "")
          + (f", long-range cutoff {settings.lr_cutoff:g} Å" if settings.lr_cutoff is not None else "") + ")")
    print(f"at {settings.timestep_fs:g} fs per step: {settings.strides_in_time()}")
    starts = StudySettings.load(args.out).start_frames
    if starts is not None:
        print(f"starting from frame{'s' if len(starts) > 1 else ''} {', '.join(map(str, starts))} of "
              f"{settings.structure} (0-based; study.json: start_frames)")
    print(f"run it with: so3k sample run {shlex.quote(args.out)}")
    return 0


def run_run(args) -> int:
    from ..errors import RunFailed
    from ..sampling.run import change_model, planned_run, run_study
    from ..sampling.study_lock import check_free

    settings, restart, step = planned_run(args.folder)
    check_free(args.folder)  # before the lines below say what this run would do
    if args.model is not None:
        changed = change_model(args.folder, args.model)
        if changed.model != settings.model:
            print(f"{args.folder}: model {changed.model} from step {step} on (before: {settings.model})",
                  file=sys.stderr, flush=True)
    if restart is not None and (args.steps or settings.steps) > step:
        print(f"continuing {args.folder} from step {step} ({restart.name}) to step {args.steps or settings.steps}",
              file=sys.stderr, flush=True)
    folder = shlex.quote(args.folder)
    try:
        piece = run_study(args.folder, total_steps=args.steps, quiet=args.quiet, auto_resume=args.auto_resume)
    except RunFailed as error:
        print(f"so3k sample run: error: {error}\ncontinue with: so3k sample run {folder}", file=sys.stderr)
        return 1
    if piece.interrupted:
        print(f"stopped at step {piece.last_step} of {piece.total_steps}; continue with: so3k sample run {folder}",
              file=sys.stderr)
        return 130
    steps = piece.last_step - piece.first_step
    print(f"{args.folder}: steps {piece.first_step} → {piece.last_step} of {piece.total_steps} in {piece.wall_s:.0f} s "
          f"({piece.wall_s / max(steps, 1):.3f} s/step); analyse with: so3k analyze {folder}")
    return 0


def run_status(args) -> int:
    import json

    from ..sampling.status import status_lines, study_status

    record = study_status(args.folder)
    print(json.dumps(record, indent=1, ensure_ascii=False) if args.json else "\n".join(status_lines(record)))
    return 0
