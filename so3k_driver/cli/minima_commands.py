"""``so3k minima MODEL FRAMES... --out DIR``: quench trajectory frames and count the distinct minima."""

from __future__ import annotations

from pathlib import Path

from .model_commands import add_model_options, load_potential


def add_parser(subparsers) -> None:
    from ..evaluation.optimizers import DEFAULT_OPTIMIZER, MAX_PRECONDITIONED_ATOMS, OPTIMIZERS, PRECONDITIONERS
    from ..sampling.minima import DuplicateTolerances

    defaults, tolerances = OPTIMIZERS[DEFAULT_OPTIMIZER](), DuplicateTolerances()
    parser = subparsers.add_parser(
        "minima", help="minimise many trajectory frames at once (batched L-BFGS or FIRE) and count the distinct minima",
        description="Minimise every frame of FRAMES (gas phase) with a batched optimiser (L-BFGS or FIRE), remove "
                    "duplicates (energy and backbone phi/psi for peptides, sorted distances otherwise) and "
                    "write DIR/summary.json, DIR/minima.extxyz (sorted by energy, eV) and plots (PNG).")
    add_model_options(parser)
    parser.add_argument("frames", nargs="+", metavar="FRAMES",
                        help="trajectory files, any format ASE reads (i-PI *.pos_*.xyz included; Å)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=DEFAULT_OPTIMIZER,
                        help="lbfgs: ASE-like L-BFGS (20 pairs; see --preconditioner); fire: FIRE with ASE's "
                             "parameters (default %(default)s)")
    parser.add_argument("--preconditioner", choices=PRECONDITIONERS, default=defaults.preconditioner,
                        help="lbfgs only: lindh starts each frame from Lindh's model Hessian (bonds, angles, "
                             "torsions from the geometry, recomputed as it moves; about half the steps on peptides), "
                             "none from 70 eV/Å² "
                             f"times the identity (ASE's); auto: lindh up to {MAX_PRECONDITIONED_ATOMS} atoms "
                             "(default %(default)s)")
    parser.add_argument("--fmax", type=float, default=defaults.fmax, metavar="EV_PER_A",
                        help="converged when every atomic force is below this, in eV/Å (default %(default)s eV/Å, "
                             "a quench; to count minima use 0.01: looser criteria stop on flat slopes)")
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps, metavar="N",
                        help="optimiser steps (force evaluations) per structure before giving up "
                             "(default %(default)s)")
    parser.add_argument("--max-step", type=float, default=defaults.max_step, metavar="A",
                        help="largest move of one atom per step in Å (default %(default)s Å)")
    parser.add_argument("--min-distance", type=float, default=defaults.min_distance, metavar="A",
                        help="stop a frame as broken when two atoms come closer than this, in Å: a hole of the "
                             "model, not a minimum (default %(default)s Å)")
    parser.add_argument("--structures-per-call", type=int, default=defaults.structures_per_call, metavar="S",
                        help="structures advanced together by one jitted call (default %(default)s)")
    parser.add_argument("--steps-per-call", type=int, default=defaults.steps_per_call, metavar="K",
                        help="most optimiser steps inside one jitted call between pair-list rebuilds "
                             "(default %(default)s)")
    parser.add_argument("--skin", type=float, default=defaults.skin, metavar="A",
                        help="Verlet skin in Å: lists hold pairs within cutoff + skin and are rebuilt when an "
                             "atom has moved skin/2 (default %(default)s Å)")
    parser.add_argument("--energy-tolerance", type=float, default=tolerances.energy, metavar="EV",
                        help="minima closer than this in energy (eV) may be the same (default %(default)s eV)")
    parser.add_argument("--angle-tolerance", type=float, default=tolerances.angle, metavar="DEG",
                        help="peptides: same minimum when every phi/psi agrees within this, in degrees "
                             "(default %(default)s°)")
    parser.add_argument("--distance-tolerance", type=float, default=tolerances.distance, metavar="A",
                        help="other molecules: same minimum when the sorted interatomic distances agree within "
                             "this RMS, in Å (default %(default)s Å)")
    parser.add_argument("--harmonic", metavar="K[,K...]",
                        help="also the harmonic free energies (quantum vibrations + classical rotor, eV) of the "
                             "lowest minima at these temperatures, from finite-difference Hessians (6N "
                             "structures per minimum, batched), harmonic and with Grimme's quasi-RRHO entropy "
                             "for modes below ~100 cm^-1")
    parser.add_argument("--harmonic-minima", type=int, default=50, metavar="N",
                        help="how many of the lowest minima get harmonic free energies (default 50)")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(func=run_minima_command, runs_model=True)


def run_minima_command(args) -> int:
    from ..evaluation.optimizers import optimizer_settings
    from ..sampling.harmonic import RANKINGS
    from ..sampling.minima import DuplicateTolerances, read_frames, run_minima
    from ..sampling.settings import parse_temperatures

    lbfgs_only = {"preconditioner": args.preconditioner} if args.optimizer == "lbfgs" else {}
    settings = optimizer_settings(args.optimizer, fmax=args.fmax, max_steps=args.max_steps, max_step=args.max_step,
                                  skin=args.skin, min_distance=args.min_distance,
                                  steps_per_call=args.steps_per_call, structures_per_call=args.structures_per_call,
                                  **lbfgs_only)
    tolerances = DuplicateTolerances(energy=args.energy_tolerance, angle=args.angle_tolerance,
                                     distance=args.distance_tolerance)
    harmonic = None if args.harmonic is None else list(parse_temperatures(args.harmonic))
    frames = read_frames(args.frames)  # bad files fail before the model is loaded
    potential = load_potential(args)
    summary = run_minima(potential, frames, args.frames, Path(args.out), settings, tolerances,
                         show_progress=not args.quiet, harmonic_temperatures=harmonic,
                         harmonic_max_minima=args.harmonic_minima, total_charge=args.total_charge,
                         unpaired_electrons=args.unpaired_electrons)
    print(f"{summary['frames']} frames, {summary['converged']} converged with {summary['optimizer']} "
          f"(fmax < {summary['fmax_eV_per_A']} eV/Å, {summary['steps_mean']:.1f} steps per frame), "
          f"{summary['distinct_minima']} distinct minima in {summary['wall_time_s']:.1f} s "
          f"({summary['frames_per_minute']:.0f} frames/min minimising)")
    if summary["broken"]:
        print(f"{summary['broken']} frames stopped with two atoms closer than "
              f"{summary['settings']['min_distance_A']} Å (the model lets atoms merge there; not counted as minima)")
    if summary["distinct_minima"]:
        print(f"lowest energy {summary['lowest_energy_eV']:.4f} eV; highest minimum "
              f"+{summary['relative_energies_eV'][-1]:.4f} eV above it")
    harmonic = summary.get("harmonic")
    if harmonic:
        for suffix, label in RANKINGS:
            for t, best in harmonic[f"lowest_free_energy{suffix}_minimum"].items():
                if best == 0:
                    print(f"{label} free energy at {t} K: lowest for minimum 0, the lowest in energy too")
                else:
                    print(f"{label} free energy at {t} K: lowest for minimum {best} "
                          f"(+{summary['relative_energies_eV'][best]:.4f} eV in energy); minimum 0, the lowest "
                          f"in energy, lies {harmonic[f'relative_free_energy{suffix}_eV'][t][0]:+.4f} eV above it")
        if harmonic["with_imaginary_modes"]:
            print(f"{harmonic['with_imaginary_modes']} of {harmonic['minima_computed']} minima have imaginary modes "
                  f"(left out of their free energies): tighten --fmax")
    print(f"summary, minima and plots in {args.out}")
    return 0
