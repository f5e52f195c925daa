"""Run i-PI on an input with so3k drivers as child processes: progress, clean stop, self-healing, resume.

``run_simulation(RunOptions(...))`` is what ``so3k run`` and sampling studies call. Children run
in their own sessions, so a Ctrl-C in the terminal reaches only this process; it then sends
SIGTERM to i-PI, which writes RESTART and sends EXIT to the drivers (soft exit).

Two kinds of input: an ``<ffsocket>`` (i-PI plus driver processes, ``python -m
so3k_driver.ipi.serving OPTIONS.json``, address, mode and batch size read from the XML) or an
``<ffdirect>`` (the model runs inside i-PI: no driver). An input with ``<ffplumed>`` needs the
PLUMED kernel, which is located before i-PI starts; the model's elements are checked against the
structure before i-PI starts too.

Healing (docs/reliability.md): a driver that crashes (signal, out of memory) is started again,
at most ``max_driver_restarts`` times per run with a doubling pause; i-PI re-queues the request
it was computing, so no step is lost or repeated. A driver that stops with an error that would
recur (exit status 2: bad structure, force or bond guard) is not restarted. i-PI itself crashing is
resumed from the newest checkpoint when ``auto_resume`` > 0, after cutting the outputs back to it
(recovery.truncate_outputs). Checkpoints are numbered (PREFIX.restart_N, the newest
``keep_checkpoints`` kept), so a run stopped by the force guard can resume from one written
before the first abnormal step.
"""

from __future__ import annotations

import dataclasses
import errno
import glob
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from . import ipi_xml, recovery
from .compute import DEFAULT_MAX_BOND_STRETCH, DEFAULT_MAX_FORCE, DIRECT_ERROR_LINE, DRIVER_ERROR_LINE, pes_lr_cutoff
from .executables import find_plumed_kernel, ipi_executable
from .progress import ProgressReader, StepProgress
from .serving import EXIT_WOULD_RECUR, GPU_MEMORY_DEFAULTS, ServeOptions, write_options
from .transport import remove_stale_unix_socket
from ..errors import InputError, IpiCrashed, IpiInputError, RunFailed, UserError
from ..io.model_files import absolute_model_spec
from ..progress import Progress

BACKENDS = ("socket", "direct")
SOCKET_WAIT_S = 60.0
IPI_STOP_GRACE_S = 30.0
DRIVER_STOP_GRACE_S = 10.0
POLL_S = 0.25
FIRST_RESTART_PAUSE_S = 1.0  # then 2, 4, ... s
MAX_RESTART_PAUSE_S = 30.0
DRIVER_OPTIONS_FILE = "so3k_driver.json"
IPI_RESET_SIGNATURE = "ConnectionResetError"
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
        if self.dtype not in (None, "float32", "float64"):
            raise UserError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.backend not in BACKENDS:
            raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.max_force < 0:
            raise UserError(f"max_force must be >= 0 eV/Å (0 = no check), got {self.max_force}")
        if not self.max_bond_stretch >= 0:
            raise UserError(f"max_bond_stretch must be >= 0 × sum of covalent radii (0 = no check), "
                            f"got {self.max_bond_stretch}")
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


@dataclasses.dataclass(frozen=True)
class RunResult:
    """How a run ended: finished, or interrupted (Ctrl-C / SIGTERM; i-PI wrote RESTART)."""

    interrupted: bool
    workdir: str
    last_step: int | None  # from the properties file; None if i-PI wrote none
    wall_s: float
    driver_restarts: int = 0
    resumes: int = 0
    model: str | None = None
    models: tuple = ()  # (forcefield name, model spec) pairs
    calls: dict = dataclasses.field(default_factory=dict)  # forcefield name -> server.CallCounter.summary()

    @property
    def restart(self) -> str:
        return os.path.join(self.workdir, recovery.CLEAN_STOP_FILE)

    @property
    def resume_command(self) -> str:
        return resume_command(self.restart, self.workdir, self.model, self.models)


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


def run_simulation(options: RunOptions, description: str | None = None) -> RunResult:
    """Start i-PI (and the drivers), follow its progress until it exits, stop everything cleanly.

    Raises RunFailed (i-PI or a driver failed beyond what healing covers, or no progress for
    options.timeout_s; the message names the checkpoint and the command that resumes),
    IpiInputError / InputError / UserError / ModelFileError for unusable inputs, a missing i-PI or
    a missing PLUMED kernel: all before i-PI starts. Unless options.quiet, progress is shown on
    stderr (so3k_driver.progress) under description (default: the input's name).
    """
    workdir = prepare_workdir(options.workdir)
    input_path = os.path.abspath(options.input)
    started = time.time()
    resumes = driver_restarts = 0
    display = None
    try:
        while True:
            piece = _prepare_piece(options, input_path, workdir, resumed=resumes > 0)
            if display is None:
                display = None if options.quiet else Progress(
                    total=piece.outputs.total_steps, description=description or os.path.basename(options.input),
                    unit="step", completed=piece.outputs.start_step)
            say = _Messages(display)
            for line in piece.notes:
                say(line)
            run = _Run(options, workdir, piece, say, display, restarts_used=driver_restarts)
            try:
                interrupted, last_step = run.execute(), run.last_step
            except IpiCrashed as crash:
                checkpoint = recovery.latest_checkpoint(workdir, piece.outputs.prefix)
                if checkpoint is None:
                    raise RunFailed(f"{crash}; no checkpoint to resume from in {workdir}") from None
                total = piece.outputs.total_steps
                if total is not None and checkpoint.step >= total:
                    # i-PI died after its last step (killed while it wrote its final files): nothing is lost
                    recovery.truncate_outputs(workdir, checkpoint.path)
                    say(f"{crash}; its checkpoint {checkpoint.path} covers all {total} steps: the run is complete")
                    interrupted, last_step = False, checkpoint.step
                else:
                    driver_restarts += run.driver_restarts
                    # Healing a driver crash that took i-PI down is part of the driver's restart budget.
                    healing = (getattr(crash, "after_driver_crash", False)
                               and driver_restarts <= options.max_driver_restarts)
                    if not healing and resumes >= options.auto_resume:
                        raise RunFailed(f"{crash}; resume with: "
                                        f"{resume_command(checkpoint.path, workdir, options.model, options.models)}"
                                        ) from None
                    resumes += 0 if healing else 1
                    cut = recovery.truncate_outputs(workdir, checkpoint.path)
                    say(f"{crash}; resuming from {checkpoint.path} (step {checkpoint.step})"
                        + ("" if healing else f", resume {resumes} of {options.auto_resume}")
                        + (f"; outputs cut back to that step: {', '.join(os.path.basename(p) for p in cut)}"
                           if cut else ""))
                    input_path = checkpoint.path
                    continue
            driver_restarts += run.driver_restarts
            return RunResult(interrupted, workdir, last_step, time.time() - started, driver_restarts, resumes,
                             options.model, options.models, run.call_counts())
    finally:
        if display is not None:
            display.close()


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
    tree = ipi_xml.load(input_path)
    root = tree.getroot()
    ipi_xml.apply_overrides(root, input_dir=os.path.dirname(input_path),
                            structure=None if resumed else options.structure, steps=options.steps,
                            address=options.address, port=options.port,
                            temperature=None if resumed else options.temperature,
                            hydrogen_mass=None if resumed else options.hydrogen_mass)
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
    environment = dict(os.environ)
    if ipi_xml.uses_plumed(root):
        environment["PLUMED_KERNEL"] = str(find_plumed_kernel())
    command = [str(ipi_executable())]
    periodic = options.pbc or ipi_xml.is_variable_cell(root)
    try:
        tree.write(run_input)
    except OSError as error:
        raise UserError(f"cannot write the run input {run_input}: {error.strerror or error}") from None
    notes = []
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


class _Messages:
    """Lines above the progress display (nothing when quiet)."""

    def __init__(self, display: Progress | None):
        self.display = display

    def __call__(self, text: str) -> None:
        if self.display is not None:
            self.display.log(f"so3k run: {text}")


class _Run:
    """One start of i-PI and its drivers, followed until i-PI exits or a stop is requested."""

    def __init__(self, options: RunOptions, workdir: str, piece: _Piece, say, display, restarts_used: int = 0):
        self.options, self.workdir, self.piece, self.say, self.display = options, workdir, piece, say, display
        self.sockets, self.outputs = piece.sockets, piece.outputs
        self.run_input = piece.ipi_command[-1]
        self.ipi: subprocess.Popen | None = None
        # One driver slot per (ffsocket, k < options.drivers); drivers[i] runs slots[i].
        self.slots = [(s, k) for s in self.sockets for k in range(options.drivers)]
        self.drivers: list[subprocess.Popen | None] = []
        self.restart_at: dict[int, float] = {}  # driver index -> monotonic time of its restart
        self.driver_restarts = 0  # in this piece; restarts_used were spent by earlier pieces
        self.restarts_used = restarts_used
        self.logs: list = []
        self.stop_requested = False
        self.started = time.time()
        self.last_step: int | None = None

    # ---------------------------------------------------------------------------------------
    def execute(self) -> bool:
        """True when stopped on request (Ctrl-C, SIGTERM), False when i-PI finished."""
        catch = threading.current_thread() is threading.main_thread()  # signal handlers: main thread only
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if catch else {}
        try:
            self._start_ipi()
            self._wait_for_socket()
            self._start_drivers()
            return self._monitor()
        finally:
            self._stop_all()
            recovery.rotate_checkpoints(self.workdir, self.outputs.prefix, self.options.keep_checkpoints)
            for s, handler in previous.items():
                signal.signal(s, handler)
            for handle in self.logs:
                handle.close()

    def _on_signal(self, signum, frame):
        self.stop_requested = True

    def _log(self, name):
        handle = open(os.path.join(self.workdir, name), "a")  # a resumed run keeps the earlier pieces' log
        self.logs.append(handle)
        return handle

    def _start_ipi(self):
        self.ipi_log_path = os.path.join(self.workdir, "ipi.log")
        self.ipi_log_start = os.path.getsize(self.ipi_log_path) if os.path.exists(self.ipi_log_path) else 0
        self.ipi = subprocess.Popen(self.piece.ipi_command, cwd=self.workdir, stdout=self._log("ipi.log"),
                                    stderr=subprocess.STDOUT, start_new_session=True, env=self.piece.environment)
        places = [f"{s.name}: {s.mode} {s.unix_path if s.mode != 'inet' else f'{s.address}:{s.port}'}, batch size "
                  f"{s.batch_size}" for s in self.sockets]
        where = "; ".join(places) if places else "model inside i-PI (<ffdirect>)"
        self.say(f"i-PI started (pid {self.ipi.pid}, {where}); log {self.ipi_log_path}")

    def _wait_for_socket(self):
        # inet: the driver retries its TCP connection with backoff
        paths = [s.unix_path for s in self.sockets if s.mode != "inet"]
        deadline = time.monotonic() + SOCKET_WAIT_S
        while not all(os.path.exists(path) for path in paths):
            if self.ipi.poll() is not None:
                raise RunFailed(f"i-PI exited (status {self.ipi.returncode}) before opening its socket: "
                                f"{_last_error(self.ipi_log_path)} (log {self.ipi_log_path})")
            if self.stop_requested:
                raise RunFailed("interrupted before i-PI opened its socket")
            if time.monotonic() > deadline:
                raise RunFailed(f"i-PI did not create {' and '.join(paths)} within {SOCKET_WAIT_S:.0f} s "
                                f"(log {self.ipi_log_path})")
            time.sleep(0.1)

    def serve_options(self, socket: ipi_xml.SocketSettings) -> ServeOptions:
        """The drivers of one <ffsocket>: its model and address, common then its own options."""
        o, s = self.options, socket
        where = ({"inet": f"{s.address}:{s.port}"} if s.mode == "inet"
                 else {"unix": s.address, "prefix": s.prefix, "shm": s.mode == "shm"})
        fields = {"dtype": o.dtype, "device": o.device, **dict(o.driver_options),
                  **dict(dict(o.forcefield_options).get(s.name, ()))}
        if o.drivers == 1:  # the one process gets the whole step: it can count (and wait for) it
            fields.update(structures_per_step=self.piece.per_step.get(s.name), stats_file=self.stats_file(s))
        return ServeOptions(model=o.model_for(s.name), structure=self.run_input, connections=o.connections,
                            pbc=self.piece.periodic, max_force=o.max_force, max_bond_stretch=o.max_bond_stretch,
                            **where, **fields)

    def stats_file(self, socket: ipi_xml.SocketSettings) -> str:
        return os.path.join(self.workdir, stats_file_name(socket.name, self._several() or len(self.piece.direct) > 1))

    def call_counts(self) -> dict:
        """Forcefield name -> the model call counts its driver (or in-process PES) wrote (server.CallCounter.summary())."""
        counts = {}
        for s in (self.sockets if self.options.drivers == 1 else []) + self.piece.direct:
            try:
                with open(self.stats_file(s)) as handle:
                    counts[s.name] = json.load(handle)
            except (OSError, ValueError):
                pass
        if not counts and not self.sockets:
            # An input that names our in-process PES itself (so3k sample init --backend direct) has it
            # write the default stats file; only this piece's copy counts.
            path = os.path.join(self.workdir, stats_file_name("", several=False))
            try:
                if os.path.getmtime(path) >= self.started:
                    with open(path) as handle:
                        counts["direct"] = json.load(handle)
            except (OSError, ValueError):
                pass
        return counts

    def _several(self) -> bool:
        return len(self.sockets) > 1

    def driver_command(self, socket: ipi_xml.SocketSettings) -> list[str]:
        """A driver process: the serving module's entry point on a JSON file of ServeOptions."""
        name = f"so3k_driver_{socket.name}.json" if self._several() else DRIVER_OPTIONS_FILE
        path = os.path.join(self.workdir, name)
        write_options(self.serve_options(socket), path)
        return [os.path.abspath(sys.executable), "-m", "so3k_driver.ipi.serving", path]

    def _start_drivers(self):
        commands = {s.name: self.driver_command(s) for s in self.sockets}
        self.drivers = [self._start_driver(index, commands[s.name]) for index, (s, _) in enumerate(self.slots)]

    def _start_driver(self, index: int, command: list[str] | None = None) -> subprocess.Popen:
        environment = dict(os.environ)
        for key, value in GPU_MEMORY_DEFAULTS.items():
            environment.setdefault(key, value)
        socket, _ = self.slots[index]
        return subprocess.Popen(command or self.driver_command(socket), cwd=self.workdir,
                                stdout=self._log(os.path.basename(self.driver_log(index))), stderr=subprocess.STDOUT,
                                start_new_session=True, env=environment)

    def driver_name(self, index: int) -> str:
        socket, k = self.slots[index]
        return f"driver {k} of forcefield {socket.name}" if self._several() else f"driver {k}"

    def driver_log(self, index: int) -> str:
        """so3k_driver_K.log, or so3k_driver_<forcefield>_K.log when the input has several ffsockets."""
        socket, k = self.slots[index]
        name = f"so3k_driver_{socket.name}_{k}.log" if self._several() else f"so3k_driver_{k}.log"
        return os.path.join(self.workdir, name)

    # ---------------------------------------------------------------------------------------
    def _show(self, progress: StepProgress) -> None:
        if self.display is None:
            return
        fields = {"t_ps": progress.time_ps, "T_K": progress.temperature_k, "V_eV": progress.potential_ev}
        self.display.update(progress.step, **{k: v for k, v in fields.items() if v is not None})

    def _monitor(self) -> bool:
        """Follow the run until i-PI exits (False) or a stop is requested (True, after a clean stop)."""
        reader = ProgressReader(self.workdir, self.outputs, since=self.started)
        last_change = time.monotonic()
        timeout = self.options.timeout_s
        while True:
            time.sleep(POLL_S)
            progress = reader.read()
            if progress is not None and progress.step != self.last_step:
                self.last_step, last_change = progress.step, time.monotonic()
                self._show(progress)
            if self.ipi.poll() is not None:
                self._finished()
                return False
            if self._heal_drivers():
                last_change = time.monotonic()  # a restarted driver compiles the model again
            if self.driver_restarts and self._ipi_socket_thread_died():
                raise self._hung_by_reset()
            if self.stop_requested:
                self.say("stopping; i-PI writes RESTART")
                self._stop_all()
                return True
            self._rotate_checkpoints()
            if time.monotonic() - last_change > timeout:
                raise RunFailed(f"no progress for {timeout:.0f} s after step {self.last_step}; stopped i-PI and the "
                                f"drivers (logs in {self.workdir})")

    def _rotate_checkpoints(self) -> None:
        """Keep the newest numbered checkpoints. Runs 4 times a second on the cores the run uses:
        reading every checkpoint's step (an XML parse each) only when there are too many files."""
        pattern = recovery.checkpoint_pattern(self.workdir, self.outputs.prefix)
        if len(glob.glob(pattern)) > self.options.keep_checkpoints:
            recovery.rotate_checkpoints(self.workdir, self.outputs.prefix, self.options.keep_checkpoints)

    def _heal_drivers(self) -> bool:
        """Restart crashed drivers (bounded, with backoff); raise for errors that would recur. True if
        a driver was started again."""
        restarted = False
        for index, driver in enumerate(self.drivers):
            if index in self.restart_at:
                if time.monotonic() >= self.restart_at[index]:
                    del self.restart_at[index]
                    self.drivers[index] = self._start_driver(index)
                    restarted = True
                continue
            code = driver.poll()
            if code in (None, 0):
                continue
            if code == EXIT_WOULD_RECUR:
                raise self._driver_error(index)
            used = self.restarts_used + self.driver_restarts
            if used >= self.options.max_driver_restarts:
                raise RunFailed(f"{self.driver_name(index)} exited with status {code} and {used} restarts are "
                                f"used up (max_driver_restarts); i-PI stopped, RESTART kept in {self.workdir} "
                                f"(log {self.driver_log(index)})")
            pause = min(FIRST_RESTART_PAUSE_S * 2 ** used, MAX_RESTART_PAUSE_S)
            self.driver_restarts += 1
            self.restart_at[index] = time.monotonic() + pause
            self.say(f"{self.driver_name(index)} exited with status {code} after step {self.last_step}; starting it again in "
                     f"{pause:.0f} s (restart {used + 1} of {self.options.max_driver_restarts}); "
                     "i-PI re-queues its request")
        return restarted

    def _ipi_socket_thread_died(self) -> bool:
        """True when i-PI's log (this piece's part) shows its socket thread killed by a client's reset.

        i-PI 3.3.1's consolidated poll thread does not catch ConnectionResetError (a driver killed
        with bytes unread): the thread dies, i-PI waits for ever and a restarted driver never gets
        its INIT. The only cure is to stop i-PI and resume it from its newest checkpoint.
        """
        try:
            with open(self.ipi_log_path, errors="replace") as handle:
                handle.seek(self.ipi_log_start)
                return IPI_RESET_SIGNATURE in handle.read()
        except OSError:
            return False

    def _hung_by_reset(self) -> IpiCrashed:
        self.ipi.kill()  # a soft exit would wait on the dead thread; the checkpoints are what we resume from
        self.ipi.wait()
        crash = IpiCrashed(f"i-PI's socket thread died on a killed driver's connection reset after step "
                           f"{self.last_step} (log {self.ipi_log_path})")
        crash.after_driver_crash = True
        return crash

    def _driver_error(self, index: int) -> RunFailed:
        """One line for a driver that stopped on an error that would recur, with where to resume."""
        kind, message = _driver_error_line(self.driver_log(index))
        return self._model_error(f"{self.driver_name(index)} stopped", kind, message, self.driver_log(index))

    def _direct_error(self) -> RunFailed | None:
        """The model inside i-PI (direct backend) failed: i-PI soft-exits, often with status 0; the
        one line it logged, with where to resume, as for a driver. None when it did not fail. Also for
        inputs that name our PES themselves (so3k sample init --backend direct)."""
        try:
            with open(self.ipi_log_path, errors="replace") as handle:
                handle.seek(self.ipi_log_start)
                found = DIRECT_ERROR_LINE.search(handle.read())
        except OSError:
            return None
        if found is None:
            return None
        message = found.group(2).split(" I-PI reports")[0].strip().rstrip("'.")
        return self._model_error("the model inside i-PI stopped", found.group(1), message, self.ipi_log_path)

    def _model_error(self, who: str, kind: str | None, message: str, log_path: str) -> RunFailed:
        text = f"{who}: {message}"
        if kind == "ModelBreakdown":
            reached = self.last_step if self.last_step is not None else self.outputs.start_step
            first_abnormal = reached + 1
            # Numbered checkpoints only: the RESTART of the soft exit is written after the guard tripped.
            earlier = [c for c in recovery.numbered_checkpoints(self.workdir, self.outputs.prefix)
                       if c.step < first_abnormal]
            checkpoint = earlier[-1] if earlier else None
            if checkpoint is not None:
                text += (f"; the last checkpoint before step {first_abnormal} is {checkpoint.path} (step "
                         f"{checkpoint.step}); resume from it with: "
                         f"{resume_command(checkpoint.path, self.workdir, self.options.model, self.options.models)}")
        return RunFailed(text + f" (log {log_path})")

    def _finished(self) -> None:
        rc = self.ipi.returncode
        deadline = time.monotonic() + DRIVER_STOP_GRACE_S
        for driver in self.drivers:
            try:
                driver.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        failed = self._direct_error()
        if failed is not None:
            raise failed  # would recur: not a crash to resume from
        if rc != 0:
            raise IpiCrashed(f"i-PI exited with status {rc} after step {self.last_step}: "
                             f"{_last_error(self.ipi_log_path)} (log {self.ipi_log_path})")
        calls = [f"{name}: {c['calls_per_step']:.2f}" for name, c in self.call_counts().items() if c.get("calls_per_step")]
        self.say(f"done in {time.time() - self.started:.1f} s; outputs in {self.workdir}"
                 + (f"; model calls per step {', '.join(calls)}" if calls else ""))

    def _stop_all(self):
        if self.ipi is not None and self.ipi.poll() is None:
            self.ipi.send_signal(signal.SIGTERM)  # soft exit: RESTART written, EXIT sent to clients
            try:
                self.ipi.wait(IPI_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.ipi.kill()  # e.g. hung after a client reset; last checkpoint stays
                self.ipi.wait()
        deadline = time.monotonic() + DRIVER_STOP_GRACE_S
        for driver in self.drivers:
            if driver.poll() is None:
                try:
                    driver.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    driver.terminate()
                    driver.wait()
        self.restart_at.clear()
        for s in self.sockets if self.ipi is not None else ():
            if s.mode == "inet":
                continue
            try:
                remove_stale_unix_socket(s.unix_path)
            except (FileExistsError, OSError):
                pass


def _driver_error_line(path: str) -> tuple[str | None, str]:
    """(exception class, message) of the last error a driver logged; (None, last line) otherwise."""
    try:
        with open(path, errors="replace") as handle:
            lines = [line.rstrip() for line in handle if line.strip()]
    except OSError:
        return None, f"(no log at {path})"
    for line in reversed(lines):
        match = DRIVER_ERROR_LINE.match(line)
        if match:
            return match.group(1), match.group(2)
    return None, lines[-1] if lines else "(empty log)"


def _last_error(path: str) -> str:
    """The line of i-PI's log that best says why it stopped: the last one naming an error, else the last."""
    try:
        with open(path, errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except OSError:
        return f"(no log at {path})"
    for line in reversed(lines):
        if "Error" in line or "error" in line or "SOFTEXIT" in line:
            return line
    return lines[-1] if lines else "(empty log)"


__all__ = ["RunOptions", "RunResult", "run_simulation", "resume_command", "prepare_workdir", "check_port_free",
           "check_model_elements"]
