"""``so3k label INPUT... -o OUT.extxyz``: sample configurations and label them with xTB or any model."""

from __future__ import annotations

from ..sampling.settings import METAD_CVS, parse_temperatures
from .model_commands import lr_cutoff_from_flag


def add_parser(subparsers) -> None:
    from ..io.model_files import MODEL_SPECS

    p = subparsers.add_parser(
        "label", help="sample configurations (xTB Langevin MD or i-PI with a model) and label them (eV, eV/Å)",
        description="Label training data. The labeller is a tblite method (GFN2-xTB, GFN1-xTB) or any MODEL "
                    "(e.g. so3lr:DIR with --lr-cutoff 0: gas phase, all pairs), evaluated in batches. "
                    "Frames come from sampling each INPUT's first structure (--sample-with: an xTB method runs "
                    "Langevin MD in ASE, a MODEL runs an i-PI study: MD at one temperature, replica exchange at "
                    "several, optionally with metadynamics), or with --sample-with none from INPUT's frames as "
                    "they are (any trajectory ASE reads).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="structure(s) or trajectories (any file ASE reads)")
    p.add_argument("-o", "--output", required=True, help="output extxyz file (energy eV, forces eV/Å)")
    p.add_argument("--labeller", default="GFN2-xTB",
                   help="GFN2-xTB (default), GFN1-xTB, or a MODEL: " + MODEL_SPECS)
    p.add_argument("--sample-with", default=None, metavar="SAMPLER",
                   help="'none' (label INPUT's frames), an xTB method, or a MODEL (default: the labeller)")
    p.add_argument("--temperatures", default="300,600,900,1200",
                   help="sampling temperatures in K: '300', '300,600' or '300:600:4' (geometric; default "
                        "300,600,900,1200)")
    p.add_argument("--frames", type=int, default=100, help="frames kept per temperature (default 100)")
    p.add_argument("--sample-every", type=int, default=20, help="MD steps between kept frames (default 20)")
    p.add_argument("--equilibration", type=int, default=200, help="MD steps discarded per temperature (default 200)")
    p.add_argument("--timestep", type=float, default=0.5, help="MD timestep in fs (default 0.5)")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs, xTB sampling (default 0.01)")
    p.add_argument("--metad", default="none", choices=METAD_CVS,
                   help="metadynamics bias while sampling with a MODEL (default none)")
    p.add_argument("--workdir", default="so3k_label", help="folder for the i-PI sampling runs (default so3k_label)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64",
                   help="precision of a MODEL labeller (default float64)")
    p.add_argument("--lr-cutoff", type=float, default=0.0,
                   help="SO3LR long-range cutoff of a MODEL labeller in Å (default 0 = all pairs, gas phase)")
    p.add_argument("--batch", type=int, default=16, help="structures per labelling call of a MODEL (default 16)")
    p.add_argument("--total-charge", type=float, default=0.0, help="total charge in e (default 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed for velocities and noise")
    p.set_defaults(func=run_label, runs_model=True)


def run_label(args) -> int:
    from ..errors import UserError
    from ..evaluation.frames import read_structure_frames
    from ..training import labelling as L

    if args.batch < 1:
        raise UserError(f"--batch must be >= 1, got {args.batch}")
    sampler = args.sample_with or args.labeller
    settings = L.LabelSettings(parse_temperatures(args.temperatures), args.frames, args.sample_every,
                               args.equilibration, args.timestep, args.friction,
                               sampler if L.is_xtb(sampler) else "GFN2-xTB", args.seed)
    if sampler.lower() == "none":
        frames = [atoms for path in args.inputs for atoms in read_structure_frames(path)]
    elif L.is_xtb(sampler):
        frames = [frame for path in args.inputs
                  for frame in L.sample_with_xtb(read_structure_frames(path, index=0)[0], settings)]
    else:
        frames = L.sample_with_model(args.inputs, sampler, settings, args.workdir, metad_cv=args.metad,
                                     quiet=False)
    if L.is_xtb(args.labeller):
        labelled = L.label_with_xtb(frames, args.labeller, args.total_charge)
    else:
        labeller = L.ModelLabeller(args.labeller, args.dtype, lr_cutoff_from_flag(args.lr_cutoff),
                                   total_charge=args.total_charge, batch_size=args.batch)
        labelled = L.label_with_model(frames, labeller)
    path = L.write_frames(labelled, args.output)
    print(f"so3k label: wrote {len(labelled)} frames labelled by {args.labeller} to {path} (energy eV, forces eV/Å)")
    return 0

