"""``so3k label STRUCTURE -o OUT.extxyz``: sample MD frames with GFN2-xTB and label them."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "label", help="sample configurations by Langevin MD with GFN2-xTB (tblite) and label them (eV, eV/Å)")
    p.add_argument("structure", metavar="STRUCTURE", help="starting structure (any file ASE reads; first frame)")
    p.add_argument("-o", "--output", required=True, help="output extxyz file (energy eV, forces eV/Å)")
    p.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 600.0, 900.0, 1200.0],
                   help="MD temperatures in K (default 300 600 900 1200)")
    p.add_argument("--frames", type=int, default=100, help="frames kept per temperature (default 100)")
    p.add_argument("--sample-every", type=int, default=20, help="MD steps between kept frames (default 20)")
    p.add_argument("--equilibration", type=int, default=200, help="MD steps discarded per temperature (default 200)")
    p.add_argument("--timestep", type=float, default=0.5, help="MD timestep in fs (default 0.5)")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs (default 0.01)")
    p.add_argument("--method", default="GFN2-xTB", help="tblite method: GFN2-xTB (default) or GFN1-xTB")
    p.add_argument("--seed", type=int, default=0, help="random seed for velocities and noise")
    p.set_defaults(func=run_label)


def run_label(args) -> int:
    import ase.io

    from ..errors import UserError
    from ..training.labelling import LabelSettings, sample_and_label, xtb_calculator

    try:
        atoms = ase.io.read(args.structure, index=0)
    except FileNotFoundError:
        raise
    except Exception as error:
        raise UserError(f"cannot read {args.structure}: {error}") from None
    if args.frames < 1 or args.sample_every < 1 or args.timestep <= 0:
        raise UserError("--frames and --sample-every must be >= 1 and --timestep > 0")
    try:
        xtb_calculator(args.method)
    except ImportError as error:
        raise UserError(str(error)) from None
    settings = LabelSettings(tuple(args.temperatures), args.frames, args.sample_every, args.equilibration,
                             args.timestep, args.friction, args.method, args.seed)
    sample_and_label(atoms, args.output, settings)
    return 0
