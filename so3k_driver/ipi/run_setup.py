"""What a run is asked to do, and everything done before i-PI starts (so3k_driver.ipi.runner runs it).

``RunOptions``: what to run and how, checked when made; ``resume_command``: the ``so3k run`` line
that continues a run from a checkpoint. The checks before i-PI starts: ``prepare_workdir``,
``check_port_free``, ``check_model_elements``. ``_prepare_piece``, before each start of i-PI (a
"piece": the first, or one resumed from a checkpoint): the input i-PI will run, rewritten into the
work directory, with the forcefields' models, stale EXIT and socket files, the PLUMED kernel and
outputs cut back to a hand-given checkpoint seen to; for the direct backend, the JSON
configuration of each in-process PES (``_write_pes_config``).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shlex
import socket

from . import ipi_xml, recovery
from .compute import DEFAULT_MAX_BOND_STRETCH, DEFAULT_MAX_FORCE, pes_lr_cutoff
from .executables import find_plumed_kernel, ipi_executable, plumed_kernel_optimised
from .serving import ServeOptions, check_model_options
from .transport import remove_stale_unix_socket
from ..errors import InputError, IpiInputError, UserError
from ..evaluation.host_memory import child_environment
from ..io.model_files import absolute_model_spec

BACKENDS = ("socket", "direct")
SERVE_FIELDS = {field.name for field in dataclasses.fields(ServeOptions)}
# Chosen by the runner from the input and RunOptions; not overridable through driver_options.
RUNNER_SERVE_FIELDS = {"model", "structure", "unix", "inet", "prefix", "shm", "connections", "pbc", "dtype",
                       "device", "max_force", "max_bond_stretch", "structures_per_step", "stats_file"}
# What one forcefield's drivers may set for themselves (RunOptions.forcefield_options).
FORCEFIELD_SERVE_FIELDS = (SERVE_FIELDS - RUNNER_SERVE_FIELDS) | {"dtype", "device"}


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What to run and how. Lengths Å, temperatures K, forces eV/Å, times s.

    input: i-PI XML input or a checkpoint (RESTART, PREFIX.restart_N). model: the drivers' model
    spec (FILE.so3k, mlff:DIR, so3lr:DIR, 'default'; unused for an <ffdirect> input), for every
    <ffsocket> not named in models. models: {forcefield name: model spec}, each <ffsocket> served by
    its own drivers at its own address. forcefield_options: {forcefield name: {ServeOptions field:
    value}} for that forcefield's drivers only (driver_options fields, dtype, device). structure,
    steps, address, port, temperature replace the input's placeholders (see
    ipi_xml.apply_overrides). hydrogen_mass: amu of every hydrogen (None: natural masses; an input
    only, a checkpoint keeps its masses). drivers × connections: driver processes and connections per process.
    pbc: periodic (virial returned; set automatically for NPT). max_force: the drivers stop the run
    above it (0 = no check). max_bond_stretch: they stop it when a covalent bond of the first
    structure they are sent grows longer than this × the sum of covalent radii (0 = no check).
    driver_options: further ServeOptions fields for the drivers, e.g. {"lr_cutoff": 10.0}.
    timeout_s: stop when i-PI makes no progress for this long. quiet: no messages and no progress
    display. max_driver_restarts: crashed drivers started again (per run, all drivers together).
    auto_resume: times i-PI is resumed from its newest checkpoint
    after it crashed (0 = stop and say how to resume). keep_checkpoints: numbered checkpoints kept.
    backend: "socket" (i-PI + driver processes) or "direct" (every <ffsocket> of the input becomes an
    <ffdirect> running the model inside i-PI: no socket, no driver process, so drivers, connections
    and driver restarts do not apply; a model error or a guard (force, bond) stops i-PI and the run fails).
    inherited_fds: open file descriptors that i-PI and every driver inherit, e.g. a study's lock
    (sampling/study_lock.py), which then lasts until the last of them exits, even when the process that
    started them is killed first.
    """

    input: str
    model: str | None = None
    workdir: str = "."
    structure: str | None = None
    steps: int | None = None
    address: str | None = None
    port: int | None = None
    temperature: float | None = None
    hydrogen_mass: float | None = None
    drivers: int = 1
    connections: int = 1
    dtype: str | None = None
    device: str | None = None
    pbc: bool = False
    max_force: float = DEFAULT_MAX_FORCE
    max_bond_stretch: float = DEFAULT_MAX_BOND_STRETCH
    driver_options: tuple = ()
    models: tuple = ()
    forcefield_options: tuple = ()
    timeout_s: float = 120.0
    quiet: bool = False
    max_driver_restarts: int = 3
    auto_resume: int = 0
    keep_checkpoints: int = 3
    backend: str = "socket"
    inherited_fds: tuple = ()

    def __post_init__(self):
        if not self.input or not os.path.isfile(self.input):
            raise UserError(f"i-PI input {self.input!r} not found")
        for name in ("drivers", "connections", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_driver_restarts", "auto_resume"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise UserError(f"steps must be >= 1, got {self.steps}")
        if self.port is not None and not 0 < self.port < 65536:
            raise UserError(f"port must be in 1..65535, got {self.port}")
        if self.temperature is not None and not self.temperature > 0:
            raise UserError(f"temperature must be > 0 K, got {self.temperature}")
        if self.hydrogen_mass is not None and not self.hydrogen_mass > 0:
            raise UserError(f"hydrogen mass must be > 0 amu, got {self.hydrogen_mass}")
        check_model_options(self.dtype, self.max_force, self.max_bond_stretch)
        if self.backend not in BACKENDS:
            raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not self.timeout_s > 0:
            raise UserError(f"timeout_s must be > 0 s, got {self.timeout_s}")
        if self.structure is not None and not os.path.isfile(self.structure):
            raise UserError(f"structure file {self.structure!r} not found")
        extra = tuple(sorted(dict(self.driver_options).items()))
        unknown = [name for name, _ in extra if name not in SERVE_FIELDS - RUNNER_SERVE_FIELDS]
        if unknown:
            raise UserError(f"driver_options: {', '.join(unknown)} cannot be set here (allowed: "
                            f"{', '.join(sorted(SERVE_FIELDS - RUNNER_SERVE_FIELDS))})")
        object.__setattr__(self, "driver_options", extra)
        models = tuple(sorted(dict(self.models).items()))
        if any(not name or not spec for name, spec in models):
            raise UserError(f"models: each forcefield needs a name and a model spec, got {dict(models)}")
        # drivers start in workdir: a model path relative to the caller's folder must still find the file
        object.__setattr__(self, "models", tuple((name, absolute_model_spec(spec)) for name, spec in models))
        if self.model:
            object.__setattr__(self, "model", absolute_model_spec(self.model))
        own = tuple(sorted((name, tuple(sorted(dict(fields).items())))
                           for name, fields in dict(self.forcefield_options).items()))
        for name, fields in own:
            unknown = [field for field, _ in fields if field not in FORCEFIELD_SERVE_FIELDS]
            if unknown:
                raise UserError(f"options of forcefield {name!r}: {', '.join(unknown)} cannot be set per forcefield "
                                f"(allowed: {', '.join(sorted(FORCEFIELD_SERVE_FIELDS))})")
        object.__setattr__(self, "forcefield_options", own)

    def model_for(self, forcefield: str) -> str | None:
        """The model spec served to one <ffsocket> (its own, else the common one)."""
        return dict(self.models).get(forcefield, self.model)


def resume_command(checkpoint: str, workdir: str, model: str | None, models=()) -> str:
    """The one command that continues a run from checkpoint, writing into the same workdir
    (models: (forcefield name, spec) pairs, written as --model NAME=SPEC)."""
    words = ["so3k", "run", checkpoint] + (["--model", model] if model else [])
    for name, spec in models:
        words += ["--model", f"{name}={spec}"]
    return " ".join(shlex.quote(word) for word in words + ["--workdir", workdir])


def prepare_workdir(path: str) -> str:
    """The absolute work directory, created if needed; UserError if it is a file or not writable."""
    workdir = os.path.abspath(path)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise UserError(f"work directory {path!r} is a file, not a folder")
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create work directory {path!r}: {error.strerror or error}") from None
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise UserError(f"work directory {path!r} is not writable")
    return workdir


def check_port_free(host: str, port: int) -> None:
    """UserError when something already listens on host:port (i-PI would fail after a long traceback)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((host, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use by another program; choose another "
                            "(--port)") from None
        raise UserError(f"cannot use address {host}:{port} for i-PI's socket: {error.strerror or error}") from None
    finally:
        probe.close()


def check_model_elements(model: str, structure: str) -> None:
    """InputError when the structure holds an element the model does not know (before i-PI starts)."""
    from .structures import read_numbers
    from ..evaluation.validation import symbol
    from ..io.model_files import load_model

    try:
        numbers = read_numbers(structure)
    except (ValueError, FileNotFoundError) as error:
        raise UserError(str(error)) from None
    config, _, _ = load_model(model)
    unknown = sorted(set(numbers.tolist()) - set(config.species))
    if unknown:
        first = {z: int(list(numbers).index(z)) + 1 for z in unknown}
        raise InputError(f"element(s) {', '.join(f'{symbol(z)} (first at atom {first[z]}, 1-based)' for z in unknown)} "
                         f"unknown to model {model} (it knows {', '.join(symbol(z) for z in sorted(config.species))})")


# i-PI's numpy calls BLAS between model calls; OpenBLAS's worker threads then spin, waiting for more work,
# on the cores the model needs. Measured on the Ac-Ala15-NHMe walkers study (8 x 162 atoms, model inside
# i-PI, 2 cores, ~200 s pieces in the order one thread / default / one thread): 85.4 / 105.2 / 93.9 ms per
# step, 68.8 / 87.6 / 76.7 ms per model call (docs/ipi.md).
IPI_THREAD_LIMITS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def ipi_environment(environment) -> dict:
    """The environment i-PI starts with: the caller's, with one BLAS/OpenMP thread unless the caller set
    any of IPI_THREAD_LIMITS themselves (then nothing is added), and glibc's huge pages for a model that
    runs inside it (host_memory.child_environment)."""
    environment = child_environment(environment)
    if not any(name in environment for name in IPI_THREAD_LIMITS):
        environment.update(IPI_THREAD_LIMITS)
    return environment


@dataclasses.dataclass
class _Piece:
    """One start of i-PI: the command, environment and settings read from the (rewritten) input."""

    ipi_command: list
    environment: dict
    sockets: list  # ipi_xml.SocketSettings, one per <ffsocket> (none: the model runs inside i-PI)
    outputs: ipi_xml.OutputSettings
    periodic: bool
    notes: list
    per_step: dict  # forcefield name -> structures it is asked for per MD step (None: unknown)
    direct: list = dataclasses.field(default_factory=list)  # ffsockets turned into <ffdirect> (backend direct)


def _prepare_piece(options: RunOptions, input_path: str, workdir: str, resumed: bool) -> _Piece:
    """Check everything that can be checked before i-PI starts and write the input it will run."""
    from .structures import ipi_structure_file

    tree = ipi_xml.load(input_path)
    root = tree.getroot()
    structure = None
    if options.structure is not None and not resumed:
        try:  # i-PI reads only its own xyz (with the cell in the comment): any other file is converted
            structure = ipi_structure_file(options.structure, workdir)
        except ValueError as error:
            raise UserError(str(error)) from None
    ipi_xml.apply_overrides(root, input_dir=os.path.dirname(input_path),
                            structure=structure, steps=options.steps,
                            address=options.address, port=options.port,
                            temperature=None if resumed else options.temperature,
                            hydrogen_mass=None if resumed else options.hydrogen_mass)
    if ipi_xml.direct_configs(root):  # a restart of a run whose model ran inside i-PI
        ipi_xml.relocate(root, workdir)
        _refresh_direct_configs(root, options, workdir, input_path)
    ipi_xml.number_checkpoints(root)
    outputs = ipi_xml.output_settings(root)
    if outputs.total_steps is not None and outputs.start_step >= outputs.total_steps:
        raise InputError(f"{os.path.basename(input_path)} has already run all {outputs.total_steps} steps "
                         f"(its <step> is {outputs.start_step}): give a larger --steps to continue it")
    sockets = ipi_xml.socket_settings(root)
    if not sockets and not ipi_xml.has_direct_forcefield(root):
        raise IpiInputError("the input has no <ffsocket> (nor <ffdirect>): so3k run serves models over i-PI sockets")
    _check_forcefield_models(options, [s.name for s in sockets])
    per_step = {s.name: ipi_xml.structures_per_evaluation(root, s.name) for s in sockets}
    run_input = os.path.join(workdir, os.path.basename(input_path).removesuffix(".xml") + ".so3k.xml")
    direct = []
    if options.backend == "direct" and sockets:
        direct, sockets = sockets, []
        # the elements come from the run input itself (its <initialize> structure or checkpoint beads)
        ipi_xml.sockets_to_direct(root, {s.name: _write_pes_config(options, workdir, s, per_step[s.name], run_input,
                                                                   len(direct) > 1) for s in direct})
    environment = ipi_environment(os.environ)
    notes = []
    if ipi_xml.uses_plumed(root):
        kernel = find_plumed_kernel()
        environment["PLUMED_KERNEL"] = str(kernel)
        if plumed_kernel_optimised(kernel) is False:
            notes.append(f"the PLUMED kernel {kernel} was compiled without optimisation: its collective variables "
                         "cost 3-8x more (1.3 ms per replica and step for the helix torsions); set PLUMED_KERNEL to "
                         "an optimised PLUMED, or in a so3k checkout run `bash scripts/build_plumed.sh` once")
    command = [str(ipi_executable())]
    periodic = options.pbc or ipi_xml.is_variable_cell(root)
    try:
        tree.write(run_input)
    except OSError as error:
        raise UserError(f"cannot write the run input {run_input}: {error.strerror or error}") from None
    for model in sorted({options.model_for(s.name) for s in sockets + direct}):
        check_model_elements(model, run_input)
    if os.path.exists(os.path.join(workdir, "EXIT")):
        os.unlink(os.path.join(workdir, "EXIT"))  # i-PI would stop at its first step
        notes.append(f"removed a stale EXIT file from {workdir}")
    for s in sockets:
        if s.mode in ("unix", "shm"):
            try:
                if remove_stale_unix_socket(s.unix_path):
                    notes.append(f"removed stale socket file {s.unix_path}")
            except FileExistsError as error:
                raise UserError(str(error)) from None
        else:
            check_port_free(s.address, s.port)
    if outputs.start_step > 0 and not resumed:
        # Resuming by hand from a checkpoint: records after it would otherwise appear twice.
        cut = recovery.truncate_outputs(workdir, input_path)
        if cut:
            notes.append(f"outputs cut back to step {outputs.start_step} of {os.path.basename(input_path)}: "
                         + ", ".join(os.path.basename(p) for p in cut))
    return _Piece(command + [run_input], environment, sockets, outputs, periodic, notes, per_step, direct)


STATS_FILE_PATTERN = "so3k_driver*_calls.json"  # every name stats_file_name gives, as a glob


def stats_file_name(forcefield: str, several: bool) -> str:
    """Where the model calls of one forcefield are counted (server.CallCounter.summary(), JSON)."""
    return f"so3k_driver_{forcefield}_calls.json" if several else "so3k_driver_calls.json"


def _write_pes_config(options: RunOptions, workdir: str, socket: ipi_xml.SocketSettings, per_step, template: str,
                      several: bool) -> str:
    """The JSON configuration of the in-process PES that replaces one <ffsocket> (direct backend)."""
    fields = {"dtype": options.dtype, "device": options.device, **dict(options.driver_options),
              **dict(dict(options.forcefield_options).get(socket.name, ()))}
    config = {"model": options.model_for(socket.name), "template": template, "batch_size": socket.batch_size,
              "structures_per_step": per_step, "stats_file": os.path.join(workdir, stats_file_name(socket.name, several)),
              "max_force": options.max_force, "max_bond_stretch": options.max_bond_stretch,
              "pbc": "true" if options.pbc else "false",
              **{key: value for key, value in fields.items() if value is not None}}
    if "lr_cutoff" in fields:
        config["lr_cutoff"] = pes_lr_cutoff(fields["lr_cutoff"])
    path = os.path.join(workdir, f"so3k_pes_{socket.name}.json")
    with open(path, "w") as handle:
        json.dump(config, handle, indent=1)
    return path


def _refresh_direct_configs(root, options: RunOptions, workdir: str, input_path: str) -> None:
    """The in-process PES configurations a restart names (direct backend), made fit for this piece: paths
    into another folder (a run folder moved or copied) point into workdir when the file is there (its
    call statistics always), and a model given now (--model) replaces the one it ran with. A missing
    configuration is a UserError (i-PI would fail on it after starting)."""
    for name, path in ipi_xml.direct_configs(root):
        full = path if os.path.isabs(path) else os.path.join(workdir, path)
        try:
            with open(full) as handle:
                config = json.load(handle)
        except (OSError, ValueError) as error:
            raise UserError(f"{os.path.basename(input_path)} runs forcefield {name!r} inside i-PI with the "
                            f"configuration {full}, which cannot be read ({error.__class__.__name__}); "
                            "start the run again from its input") from None
        updated = dict(config)
        for key in ("template", "stats_file"):
            value = config.get(key)
            # the statistics are written by this piece: they move whether or not the old file came along
            moved = ipi_xml.moved_path(value, workdir, must_exist=key != "stats_file") if isinstance(value, str) else None
            if moved is not None:
                updated[key] = moved
        model = options.model_for(name)
        if model:
            updated["model"] = model
        if updated != config:
            with open(full, "w") as handle:
                json.dump(updated, handle, indent=1)


def _check_forcefield_models(options: RunOptions, names: list[str]) -> None:
    """UserError unless every <ffsocket> has a model and every named forcefield is one of the input's."""
    named = {name for name, _ in options.models} | {name for name, _ in options.forcefield_options}
    unknown = sorted(named - set(names))
    if unknown:
        raise UserError(f"forcefield(s) {', '.join(unknown)} given a model or options, but the input's <ffsocket>s "
                        f"are {', '.join(names) or 'none'}")
    missing = [name for name in names if not options.model_for(name)]
    if missing:
        which = "the input's <ffsocket>" if len(names) == 1 else f"forcefield(s) {', '.join(missing)}"
        raise UserError(f"{which} need(s) a model: --model SPEC (every ffsocket) or --model NAME=SPEC (one)")
