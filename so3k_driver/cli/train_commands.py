"""``so3k train CONFIG`` and ``so3k test MODEL DATA``. Units: Å, eV, eV/Å (data converted on load)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .model_commands import lr_cutoff_from_flag


def add_parser(subparsers) -> None:
    from ..io.model_files import MODEL_SPECS

    t = subparsers.add_parser("train", help="train a SO3krates model from labelled data (YAML/TOML config)")
    t.add_argument("config", metavar="CONFIG", help="training settings, .yaml/.yml, .toml or .json")
    t.add_argument("--data", help="labelled data: extxyz or npz (overrides 'data')")
    t.add_argument("--energy-unit", help="unit of energies in the data file: eV or kcal/mol (forces per Å)")
    t.add_argument("--epochs", type=int, help="number of epochs")
    t.add_argument("--num-train", type=int, help="training structures (validation: the rest or num_valid)")
    t.add_argument("--output-dir", help="folder for checkpoints, metrics.jsonl, learning_curve.png")
    t.add_argument("--export", help="path of the exported model (.so3k)")
    t.add_argument("--no-resume", action="store_true", help="start afresh even if checkpoints exist")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set learning_rate=5e-4 --set model.num_layers=2")
    t.set_defaults(func=run_train, runs_model=True)

    s = subparsers.add_parser("test", help="energy/force errors of a model on labelled data, with a parity plot")
    s.add_argument("model", metavar="MODEL", help=MODEL_SPECS)
    s.add_argument("data", metavar="DATA", help="labelled data: extxyz or npz")
    s.add_argument("--energy-unit", default="eV", help="unit of energies in DATA: eV (default) or kcal/mol")
    s.add_argument("--dtype", choices=["float32", "float64"], default=None, help="evaluation precision")
    s.add_argument("--lr-cutoff", type=float, default=None,
                   help="SO3LR long-range cutoff in Å; 0 = all pairs, gas phase only (default: what the data's "
                        "labels record, as `so3k label` and `so3k eval -o` write it, else 12)")
    s.add_argument("--plot", help="parity plot PNG path (default: none)")
    s.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    s.set_defaults(func=run_test, runs_model=True)


def settings_from_args(args):
    from ..errors import UserError
    from ..training.settings import TrainSettings, apply_overrides, read_settings_file

    path = Path(args.config)
    if not path.exists():
        raise UserError(f"config file {path} not found")
    try:
        raw = read_settings_file(path)
        flags = {"data": args.data, "energy_unit": args.energy_unit, "epochs": args.epochs,
                 "num_train": args.num_train, "output_dir": args.output_dir, "export": args.export}
        raw.update({k: v for k, v in flags.items() if v is not None})
        if args.no_resume:
            raw["resume"] = False
        raw = apply_overrides(raw, args.set)
        return TrainSettings.from_dict(raw)
    except (ValueError, TypeError) as error:
        raise UserError(f"bad training settings in {path}: {error}") from None


def run_train(args) -> int:
    from ..errors import UserError
    from ..training.trainer import train

    settings = settings_from_args(args)
    try:
        train(settings)
    except ValueError as error:
        raise UserError(str(error)) from None
    return 0


def run_test(args) -> int:
    from ..errors import UserError
    from ..training.data import UNRECORDED
    from ..training.testing import test_model

    lr_cutoff = UNRECORDED if args.lr_cutoff is None else lr_cutoff_from_flag(args.lr_cutoff)
    try:
        metrics = test_model(args.model, args.data, args.energy_unit, dtype=args.dtype, plot=args.plot,
                             lr_cutoff=lr_cutoff)
    except ValueError as error:
        raise UserError(str(error)) from None
    for warning in metrics["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(metrics))
    else:
        from ..training.evaluation import format_element_errors, format_metrics

        long_range = metrics.get("lr_cutoff_A")
        reach = "" if long_range is None else (
            "; long range: all pairs" if long_range == "all" else f"; long range: {long_range:g} Å cutoff")
        print(f"{args.model} on {args.data} (energies eV, forces eV/Å after conversion from {args.energy_unit}"
              f"{reach}):")
        print("  " + format_metrics(metrics))
        print("  " + format_element_errors(metrics["forces_by_element"]))
        if args.plot:
            print(f"  parity plot: {args.plot}")
    return 0
