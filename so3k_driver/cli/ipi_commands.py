"""``so3k serve`` (an i-PI client) and ``so3k run`` (i-PI + drivers with progress)."""

from __future__ import annotations

import logging
import os
import re
import sys

from .model_commands import add_model_options, lr_cutoff_from_flag


def add_parser(subparsers) -> None:
    from ..io.model_files import MODEL_SPECS

    from ..ipi.compute import DEFAULT_MAX_BOND_STRETCH, DEFAULT_MAX_FORCE

    serve = subparsers.add_parser(
        "serve", help="serve a model to i-PI over a socket (atomic units on the wire)",
        description="Connect to a running i-PI and compute energies (Ha), forces (Ha/bohr) and "
                    "virials (Ha) for it until i-PI sends EXIT or goes away.")
    add_model_options(serve)
    where = serve.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", metavar="ADDRESS",
                       help="unix socket address: the <address> of i-PI's ffsocket (file PREFIX+ADDRESS)")
    where.add_argument("--inet", metavar="HOST:PORT", help="TCP address of i-PI's ffsocket (mode='inet')")
    serve.add_argument("--prefix", default="/tmp/ipi_", help="unix socket prefix (i-PI's sockets_prefix; default /tmp/ipi_)")
    serve.add_argument("--shm", action="store_true", help="shared-memory transport (ffsocket mode='shm'; implies --unix)")
    serve.add_argument("--structure", required=True, metavar="FILE",
                       help="where the elements come from (i-PI sends positions only): a structure file, "
                            "or the i-PI input XML / RESTART")
    serve.add_argument("--connections", type=int, default=1, metavar="N",
                       help="connections this process opens (e.g. one per replica); requests arriving "
                            "together are evaluated in one batch (default 1)")
    serve.add_argument("--pbc", action="store_true",
                       help="periodic system: use i-PI's cell and return the virial (default: gas phase, zero virial)")
    serve.add_argument("--connect-timeout", type=float, default=60.0, metavar="S",
                       help="give up connecting after S seconds of retries (default 60)")
    serve.add_argument("--max-force", type=float, default=DEFAULT_MAX_FORCE, metavar="EV_PER_A",
                       help="stop with an error when any force exceeds this, in eV/Å (default "
                            f"{DEFAULT_MAX_FORCE:g}; 0 = no check): a model outside its training data "
                            "otherwise lets the molecule explode and the run goes on with garbage")
    serve.add_argument("--max-bond-stretch", type=float, default=DEFAULT_MAX_BOND_STRETCH, metavar="FACTOR",
                       help="stop with an error when a covalent bond of the first structure i-PI sends grows "
                            "longer than FACTOR × the sum of the two atoms' covalent radii (default "
                            f"{DEFAULT_MAX_BOND_STRETCH:g}, the criterion of 'so3k analyze' for a molecule that broke "
                            "apart; 0 = no check)")
    serve.add_argument("-v", "--verbose", action="store_true", help="log every INIT and timing")
    serve.set_defaults(func=run_serve, runs_model=True)

    run = subparsers.add_parser(
        "run", help="run i-PI on an XML input (or RESTART) with so3k drivers, showing progress",
        description="Start i-PI on INPUT, start the driver(s) with the socket address, mode and batch "
                    "size read from it, and show progress. Ctrl-C stops cleanly (i-PI writes RESTART); "
                    "'so3k run RESTART --model MODEL' resumes.")
    run.add_argument("input", metavar="INPUT", help="i-PI XML input or RESTART file")
    run.add_argument("--model", action="append", default=[], metavar="[NAME=]SPEC",
                     help="model served by the drivers: " + MODEL_SPECS + " (required for an "
                          "<ffsocket> input; an <ffdirect> input names its own). Repeatable: NAME=SPEC serves the "
                          "<ffsocket name='NAME'>, a plain SPEC every ffsocket not named")
    run.add_argument("--structure", help="replace the <initialize><file> structures (Å; any file ASE reads, converted to i-PI's xyz in the work directory when it lacks i-PI's CELL comment)")
    run.add_argument("--steps", type=int, help="replace <total_steps> (MD steps counted from the start of the run; with a RESTART: the new total)")
    run.add_argument("--address", help="replace the ffsocket <address> (unix/shm: socket name; inet: host)")
    run.add_argument("--port", type=int, help="replace the ffsocket <port> (inet)")
    run.add_argument("--temperature", type=float, metavar="K",
                     help="replace the ensemble temperature and thermal velocities, in kelvin (single system only)")
    run.add_argument("--hydrogen-mass", type=float, default=None, metavar="AMU",
                     help="give every hydrogen this mass in amu (e.g. 4 for 2 fs steps; default: natural masses). "
                          "Configurational averages do not change, dynamics do (docs/ipi.md)")
    run.add_argument("--backend", choices=["socket", "direct"], default="socket",
                     help="socket: the model in driver processes over i-PI's sockets (default; drivers restart after "
                          "a crash); direct: every <ffsocket> becomes an <ffdirect>, the model runs inside i-PI "
                          "(no socket round trip: ~0.6 ms less per step, see docs/ipi.md)")
    run.add_argument("--drivers", type=int, default=1, metavar="N", help="driver processes to start (default 1)")
    run.add_argument("--connections", type=int, default=1, metavar="N", help="connections per driver (default 1)")
    run.add_argument("--workdir", default=".", help="where i-PI runs and writes its outputs (default: here)")
    run.add_argument("--dtype", choices=["float32", "float64"], default=None, help="evaluation precision")
    run.add_argument("--device", default=None, help="JAX device for the drivers, e.g. cpu, gpu, gpu:1")
    run.add_argument("--pbc", action="store_true", help="periodic system (stress/virial); default: set when the XML asks for NPT")
    run.add_argument("--max-force", type=float, default=DEFAULT_MAX_FORCE, metavar="EV_PER_A",
                     help=f"the drivers stop the run when a force exceeds this, eV/Å (default {DEFAULT_MAX_FORCE:g}; "
                          "0 = no check); RESTART is kept")
    run.add_argument("--max-bond-stretch", type=float, default=DEFAULT_MAX_BOND_STRETCH, metavar="FACTOR",
                     help="the drivers stop the run when a covalent bond of the starting structure grows longer than "
                          "FACTOR × the sum of the two atoms' covalent radii (default "
                          f"{DEFAULT_MAX_BOND_STRETCH:g}: thermal C–C stays below 2.43 Å; 0 = no check); RESTART is kept")
    run.add_argument("--driver-option", action="append", default=[], metavar="[NAME:]OPT",
                     help="a model option for each driver (repeatable): --lr-cutoff, --dispersion-damping, "
                          "--total-charge, --unpaired-electrons, e.g. --driver-option=--lr-cutoff=10; NAME:OPT only "
                          "for the drivers of <ffsocket name='NAME'>, which may also set --dtype and --device")
    run.add_argument("--driver-restarts", type=int, default=3, metavar="N",
                     help="start a crashed driver again, at most N times per run (default 3; 0 = stop the run)")
    run.add_argument("--auto-resume", type=int, default=0, metavar="N",
                     help="when i-PI itself crashes, resume it from its newest checkpoint, at most N times "
                          "(default 0: stop and print the command that resumes)")
    run.add_argument("--keep-checkpoints", type=int, default=3, metavar="K",
                     help="numbered checkpoints PREFIX.restart_N kept in the work directory (default 3)")
    run.add_argument("--timeout", type=float, default=120.0, metavar="S",
                     help="stop everything if i-PI makes no progress for S seconds (default 120 s)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=run_run)


def run_serve(args) -> int:
    from ..errors import Disconnected
    from ..ipi.serving import GPU_MEMORY_DEFAULTS, ServeOptions, serve_model

    for key, value in GPU_MEMORY_DEFAULTS.items():
        os.environ.setdefault(key, value)  # before JAX is imported by serve_model
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("so3k serve: %(message)s"))
    logger = logging.getLogger("so3k")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    options = ServeOptions(
        model=args.model, structure=args.structure, unix=args.unix, inet=args.inet, prefix=args.prefix,
        shm=args.shm, connections=args.connections, pbc=args.pbc, dtype=args.dtype, device=args.device,
        lr_cutoff=lr_cutoff_from_flag(args.lr_cutoff), dispersion_damping=args.dispersion_damping,
        total_charge=args.total_charge, unpaired_electrons=args.unpaired_electrons, max_force=args.max_force,
        max_bond_stretch=args.max_bond_stretch, connect_timeout_s=args.connect_timeout)
    try:
        serve_model(options)
    except Disconnected as error:
        print(f"so3k serve: i-PI went away without EXIT ({error}); stopping", file=sys.stderr)
        return 1
    return 0


def driver_settings(option_words: list[str], per_forcefield: bool = False) -> dict:
    """ServeOptions fields from ``--driver-option`` words (the model options of ``so3k serve``;
    per_forcefield: --dtype and --device too)."""
    import argparse

    from ..errors import UserError

    parser = argparse.ArgumentParser(prog="--driver-option", add_help=False, exit_on_error=False)
    add_model_options(parser)
    try:
        parsed, unknown = parser.parse_known_args(["MODEL", *option_words])
    except argparse.ArgumentError as error:
        raise UserError(f"--driver-option: {error}") from None
    names = "--lr-cutoff, --dispersion-damping, --total-charge, --unpaired-electrons"
    given = {word.split("=")[0] for word in option_words}
    local = {"--dtype", "--device"} & given
    if unknown or (local and not per_forcefield):
        bad = " ".join(unknown) or ", ".join(sorted(local))
        raise UserError(f"--driver-option: {bad} is not a driver model option ({names}"
                        + ("; --dtype and --device as NAME:OPT for one forcefield" if not per_forcefield else
                           ", --dtype, --device") + ")")
    fields = {"lr_cutoff": lr_cutoff_from_flag(parsed.lr_cutoff),
              "dispersion_damping": parsed.dispersion_damping, "total_charge": parsed.total_charge,
              "unpaired_electrons": parsed.unpaired_electrons, "dtype": parsed.dtype, "device": parsed.device}
    return {name: value for name, value in fields.items() if f"--{name.replace('_', '-')}" in given}


FORCEFIELD_PREFIX = re.compile(r"^(?P<name>[A-Za-z_][\w.-]*)(?P<separator>[=:])(?P<rest>.+)$")


def forcefield_models(values: list[str]) -> tuple[str | None, dict]:
    """(common model, {forcefield name: model}) from ``--model`` values: NAME=SPEC or SPEC."""
    from ..errors import UserError

    common, named = None, {}
    for value in values:
        match = FORCEFIELD_PREFIX.match(value)
        if match and match["separator"] == "=":
            if match["name"] in named:
                raise UserError(f"--model: forcefield {match['name']!r} given twice")
            named[match["name"]] = match["rest"]
        elif common is not None:
            raise UserError(f"--model: two models for every forcefield ({common}, {value}); name one with NAME=SPEC")
        else:
            common = value
    return common, named


def forcefield_driver_options(words: list[str]) -> tuple[dict, dict]:
    """(common driver options, {forcefield name: its driver options}) from ``--driver-option`` words."""
    common, named = [], {}
    for word in words:
        match = FORCEFIELD_PREFIX.match(word)
        if match and match["separator"] == ":" and match["rest"].startswith("-"):
            named.setdefault(match["name"], []).append(match["rest"])
        else:
            common.append(word)
    return driver_settings(common), {name: driver_settings(own, per_forcefield=True) for name, own in named.items()}


def run_options(args):
    """RunOptions from the ``so3k run`` flags."""
    from ..ipi.runner import RunOptions

    model, models = forcefield_models(args.model)
    driver_options, forcefield_options = forcefield_driver_options(args.driver_option)
    return RunOptions(
        input=args.input, model=model, models=models, workdir=args.workdir, structure=args.structure, steps=args.steps,
        address=args.address, port=args.port, temperature=args.temperature,
        hydrogen_mass=args.hydrogen_mass, drivers=args.drivers,
        connections=args.connections, dtype=args.dtype, device=args.device, pbc=args.pbc,
        max_force=args.max_force, max_bond_stretch=args.max_bond_stretch, driver_options=driver_options, forcefield_options=forcefield_options,
        timeout_s=args.timeout,
        quiet=args.quiet, max_driver_restarts=args.driver_restarts, auto_resume=args.auto_resume,
        keep_checkpoints=args.keep_checkpoints, backend=args.backend)


def run_run(args) -> int:
    from ..errors import RunFailed
    from ..ipi.runner import run_simulation

    try:
        result = run_simulation(run_options(args))
    except RunFailed as error:
        print(f"so3k run: error: {error}", file=sys.stderr)
        return 1  # the run failed (a process died, no progress): not a usage error
    if result.interrupted:
        print(f"so3k run: stopped; resume with: {result.resume_command}", file=sys.stderr)
        return 130
    return 0
