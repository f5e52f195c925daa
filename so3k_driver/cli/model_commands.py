"""``so3k info MODEL`` and ``so3k eval MODEL STRUCTURE...``."""

from __future__ import annotations

import json
import sys

import numpy as np


def add_model_options(parser) -> None:
    """Options every command that loads a model shares."""
    from ..io.model_files import MODEL_SPECS

    parser.add_argument("model", metavar="MODEL", help="model: " + MODEL_SPECS)
    parser.add_argument("--dtype", choices=["float32", "float64"], default=None,
                        help="evaluation precision (default: the model's own, float32)")
    parser.add_argument("--device", default=None, help="JAX device, e.g. cpu, gpu, gpu:1 (default: JAX's choice)")
    parser.add_argument("--lr-cutoff", type=float, default=12.0,
                        help="SO3LR long-range cutoff in Å (default 12; 0 = all pairs, gas phase only)")
    parser.add_argument("--dispersion-damping", type=float, default=2.0,
                        help="SO3LR dispersion switch-off width in Å below the long-range cutoff (default 2)")
    parser.add_argument("--total-charge", type=float, default=0.0, help="SO3LR total charge in e (default 0)")
    parser.add_argument("--unpaired-electrons", type=float, default=0.0,
                        help="SO3LR number of unpaired electrons (default 0)")


def lr_cutoff_from_flag(value: float) -> float | None:
    """An --lr-cutoff flag (Å) as the library takes it: 0 on the command line means all pairs (None)."""
    return None if value == 0 else value


def load_potential(args):
    from ..evaluation.potential import Potential

    return Potential.load(
        args.model,
        dtype=args.dtype,
        device=args.device,
        lr_cutoff=lr_cutoff_from_flag(args.lr_cutoff),
        dispersion_damping=args.dispersion_damping,
    )


def add_parser(subparsers) -> None:
    info = subparsers.add_parser("info", help="describe a model")
    info.add_argument("model", metavar="MODEL")
    info.set_defaults(func=run_info)

    ev = subparsers.add_parser("eval", help="energy (eV), forces (eV/Å) and stress (eV/Å^3) of structures")
    add_model_options(ev)
    ev.add_argument("structures", nargs="+", metavar="STRUCTURE",
                    help="any file ASE reads (all frames; Å). i-PI xyz trajectories are read in the unit their "
                         "comment names (positions{atomic_unit} = bohr) and without their cell (gas phase); for a "
                         "periodic structure give a file that carries its cell (extxyz)")
    shown = ev.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="one JSON object per structure and line")
    shown.add_argument("-o", "--output", metavar="FILE.extxyz",
                       help="write every frame with its energy (eV), forces (eV/Å), stress (eV/Å^3) and extra "
                            "outputs (charges, committee spreads) to one extxyz file, evaluated in batches, "
                            "instead of printing them")
    ev.add_argument("--batch-size", type=int, default=16,
                    help="structures per model call with --output (default 16; same-size frames go together)")
    ev.set_defaults(func=run_eval, runs_model=True)


def run_info(args) -> int:
    from ..io.model_files import load_model
    from ..evaluation.validation import symbol

    config, params, header = load_model(args.model)
    from ..io.model_files import flatten

    count = sum(int(np.prod(v.shape)) for v in flatten(params).values())
    print(f"model        {args.model}")
    print(f"kind         {'SO3LR (SO3krates + ZBL, electrostatics, dispersion)' if config.is_so3lr else 'SO3krates'}")
    print(f"parameters   {count:,}")
    print(f"cutoff       {config.cutoff} Å ({config.cutoff_fn}), {config.num_radial} {config.radial_basis} radial functions")
    print(f"layers       {config.num_layers}, features {config.num_features}, heads {config.num_heads}, degrees {list(config.degrees)}")
    species = config.species
    text = ", ".join(symbol(z) for z in species) if len(species) < 30 else f"Z = {species[0]}..{species[-1]}"
    print(f"elements     {text}")
    print(f"dtype        {header.get('dtype', 'float32')}")
    for key, value in header.get("metadata", {}).items():
        print(f"{key:<12} {value}")
    return 0


def run_eval(args) -> int:
    from ..evaluation.frames import read_structure_frames

    if args.output is not None:
        return _write_predictions(args)
    potential = load_potential(args)
    for path in args.structures:
        frames = read_structure_frames(path)
        for index, atoms in enumerate(frames):
            results = potential.evaluate_atoms(
                atoms, total_charge=args.total_charge, unpaired_electrons=args.unpaired_electrons
            )
            _print_result(path, index, atoms, results, args.json)
    return 0


def _write_predictions(args) -> int:
    import time

    from ..errors import UserError
    from ..evaluation.frames import predict_frames, read_structure_frames, write_extxyz

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    frames = [atoms for path in args.structures for atoms in read_structure_frames(path)]
    potential = load_potential(args)
    start = time.perf_counter()
    predicted = predict_frames(potential, frames, args.batch_size, f"evaluating with {args.model}",
                               total_charge=args.total_charge, unpaired_electrons=args.unpaired_electrons)
    seconds = time.perf_counter() - start
    path = write_extxyz(predicted, args.output)
    extras = sorted(set(predicted[0].arrays) - {"numbers", "positions"} | set(predicted[0].info) - set(frames[0].info))
    print(f"so3k eval: wrote {len(predicted)} frame{'' if len(predicted) == 1 else 's'} to {path} (energy eV, forces eV/Å"
          + (f"; also {', '.join(extras)}" if extras else "") + f") in {seconds:.1f} s")
    return 0


def _print_result(path, index, atoms, results, as_json: bool) -> None:
    energy, forces = float(results.energy[0]), results.forces[0]
    if as_json:
        record = {"structure": path, "frame": index, "energy": energy, "forces": forces.tolist(),
                  "units": {"energy": "eV", "forces": "eV/angstrom", "stress": "eV/angstrom^3"},
                  "time_s": results.wall_time}
        if results.stress is not None:
            record["stress"] = results.stress[0].tolist()
        for key, value in results.extras.items():
            record[key] = value[0].tolist()
        print(json.dumps(record))
        return
    print(f"{path} [frame {index}]: {len(atoms)} atoms, {atoms.get_chemical_formula()}")
    print(f"  energy  {energy:.8f} eV")
    print(f"  max |F| {np.abs(forces).max():.6f} eV/Å, time {results.wall_time * 1e3:.1f} ms")
    print("  forces (eV/Å):")
    for symbol, f in zip(atoms.get_chemical_symbols(), forces):
        print(f"    {symbol:<2} {f[0]:12.6f} {f[1]:12.6f} {f[2]:12.6f}")
    if results.stress is not None:
        print("  stress (eV/Å^3):")
        for row in results.stress[0]:
            print(f"    {row[0]:12.6f} {row[1]:12.6f} {row[2]:12.6f}")
    for key, value in results.extras.items():
        print(f"  {key}: {np.array2string(value[0], precision=5, max_line_width=100)}")
    sys.stdout.flush()
