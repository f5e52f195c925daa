"""``so3k committee create`` (several models -> one committee file) and ``so3k committee select``
(the frames of a trajectory the committee disagrees on most, for labelling)."""

from __future__ import annotations


def add_parser(subparsers) -> None:
    committee = subparsers.add_parser(
        "committee", help="committees of models: create one file, select uncertain frames (active learning)")
    actions = committee.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="combine models of one architecture into one committee file",
                                description="Stack the parameters of MODEL... (same configuration, e.g. trained "
                                            "with different seeds) into one .so3k file evaluated in one call.")
    create.add_argument("models", nargs="+", metavar="MODEL", help="member models (at least 2)")
    create.add_argument("-o", "--output", required=True, help="committee file to write (.so3k)")
    create.set_defaults(func=run_create)

    select = actions.add_parser("select", help="frames with the largest committee spread, for labelling",
                                description="Evaluate the committee on every frame of TRAJECTORY... and write "
                                            "the COUNT frames with the largest spread (forces: largest per-atom "
                                            "force std in eV/Å; energy: energy std in eV).")
    select.add_argument("committee", metavar="COMMITTEE", help="a committee model file")
    select.add_argument("trajectories", nargs="+", metavar="TRAJECTORY", help="frames to rank (any file ASE reads)")
    select.add_argument("-n", "--count", type=int, default=50, help="frames to select (default 50)")
    select.add_argument("--by", choices=["forces", "energy"], default="forces", help="rank by (default forces)")
    select.add_argument("-o", "--output", required=True, help="extxyz file for the selected frames")
    select.add_argument("--dtype", choices=["float32", "float64"], default=None, help="evaluation precision")
    select.set_defaults(func=run_select, runs_model=True)


def run_create(args) -> int:
    from ..io.model_files import save_committee

    path = save_committee(args.output, args.models)
    print(f"so3k committee: wrote {path} ({len(args.models)} members)")
    return 0


def run_select(args) -> int:
    import ase.io

    from ..evaluation.frames import read_structure_frames
    from ..evaluation.potential import Potential
    from ..training.active_learning import committee_uncertainties, most_uncertain

    frames = [atoms for path in args.trajectories for atoms in read_structure_frames(path)]
    potential = Potential.load(args.committee, dtype=args.dtype)
    spreads = committee_uncertainties(frames, potential)
    chosen = most_uncertain(frames, spreads, args.count, args.by)
    ase.io.write(args.output, chosen, format="extxyz")
    column = 1 if args.by == "forces" else 0
    unit = "eV/Å" if args.by == "forces" else "eV"
    print(f"so3k committee: {len(chosen)} of {len(frames)} frames written to {args.output}; {args.by} spread "
          f"{spreads[:, column].min():.4g}-{spreads[:, column].max():.4g} {unit} over all frames")
    return 0
