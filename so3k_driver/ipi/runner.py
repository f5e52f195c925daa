"""Run i-PI on an input with so3k drivers as child processes: progress, clean stop, resume.

``run_simulation(RunOptions(...))`` is what ``so3k run`` and sampling studies call. Children run
in their own sessions, so a Ctrl-C in the terminal reaches only this process; it then sends
SIGTERM to i-PI, which writes RESTART and sends EXIT to the drivers (soft exit).

Two kinds of input: an ``<ffsocket>`` (i-PI plus ``so3k serve`` drivers, address, mode and batch
size read from the XML) or an ``<ffdirect>`` (the model runs inside i-PI: no driver). An input
with ``<ffplumed>`` needs the PLUMED kernel, which is located before i-PI starts.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

from . import ipi_xml
from .compute import DEFAULT_MAX_FORCE
from .executables import find_plumed_kernel, ipi_executable
from .progress import ProgressReader, StepProgress
from .transport import remove_stale_unix_socket
from ..errors import RunFailed, UserError
from ..progress import Progress

SOCKET_WAIT_S = 60.0
IPI_STOP_GRACE_S = 30.0
DRIVER_STOP_GRACE_S = 10.0
POLL_S = 0.25


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What to run and how. Lengths Å, temperatures K, forces eV/Å, times s.

    input: i-PI XML input or RESTART file. model: the drivers' model spec (FILE.so3k, mlff:DIR,
    so3lr:DIR, 'default'; unused for an <ffdirect> input). structure, steps, address, port,
    temperature replace the input's placeholders (see ipi_xml.apply_overrides). drivers ×
    connections: driver processes and connections per process. pbc: periodic (virial returned;
    set automatically for NPT). max_force: the drivers stop the run above it (0 = no check).
    driver_options: extra ``so3k serve`` options. timeout_s: stop when i-PI makes no progress
    for this long. quiet: no messages and no progress display.
    """

    input: str
    model: str | None = None
    workdir: str = "."
    structure: str | None = None
    steps: int | None = None
    address: str | None = None
    port: int | None = None
    temperature: float | None = None
    drivers: int = 1
    connections: int = 1
    dtype: str | None = None
    device: str | None = None
    pbc: bool = False
    max_force: float = DEFAULT_MAX_FORCE
    driver_options: tuple[str, ...] = ()
    timeout_s: float = 120.0
    quiet: bool = False

    def __post_init__(self):
        if not self.input or not os.path.isfile(self.input):
            raise UserError(f"i-PI input {self.input!r} not found")
        for name in ("drivers", "connections"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise UserError(f"steps must be >= 1, got {self.steps}")
        if self.port is not None and not 0 < self.port < 65536:
            raise UserError(f"port must be in 1..65535, got {self.port}")
        if self.temperature is not None and not self.temperature > 0:
            raise UserError(f"temperature must be > 0 K, got {self.temperature}")
        if self.dtype not in (None, "float32", "float64"):
            raise UserError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.max_force < 0:
            raise UserError(f"max_force must be >= 0 eV/Å (0 = no check), got {self.max_force}")
        if not self.timeout_s > 0:
            raise UserError(f"timeout_s must be > 0 s, got {self.timeout_s}")
        if self.structure is not None and not os.path.isfile(self.structure):
            raise UserError(f"structure file {self.structure!r} not found")
        object.__setattr__(self, "driver_options", tuple(self.driver_options))


@dataclasses.dataclass(frozen=True)
class RunResult:
    """How a run ended: finished, or interrupted (Ctrl-C / SIGTERM; i-PI wrote RESTART)."""

    interrupted: bool
    workdir: str
    last_step: int | None  # from the properties file; None if i-PI wrote none
    wall_s: float

    @property
    def restart(self) -> str:
        return os.path.join(self.workdir, "RESTART")


def run_simulation(options: RunOptions, description: str | None = None) -> RunResult:
    """Start i-PI (and the drivers), follow its progress until it exits, stop everything cleanly.

    Raises RunFailed (i-PI or a driver failed, or no progress for options.timeout_s; RESTART or
    the last checkpoint stays in the work directory), IpiInputError / UserError for unusable
    inputs, a missing i-PI or a missing PLUMED kernel. Unless options.quiet, progress is shown
    on stderr (so3k_driver.progress: a live bar on a terminal, a plain line every ~10 s in a log)
    under description (default: the input's name).
    """
    workdir = os.path.abspath(options.workdir)
    os.makedirs(workdir, exist_ok=True)
    input_path = os.path.abspath(options.input)
    tree = ipi_xml.load(input_path)
    root = tree.getroot()
    ipi_xml.apply_overrides(root, input_dir=os.path.dirname(input_path), structure=options.structure,
                            steps=options.steps, address=options.address, port=options.port,
                            temperature=options.temperature)
    direct = ipi_xml.has_direct_forcefield(root) and root.find("ffsocket") is None
    sockets = None if direct else ipi_xml.socket_settings(root)
    if sockets is not None and not options.model:
        raise UserError("the input serves the model over an <ffsocket>: a model is needed (--model)")
    environment = dict(os.environ)
    if ipi_xml.uses_plumed(root):
        environment["PLUMED_KERNEL"] = str(find_plumed_kernel())
    command = [str(ipi_executable())]
    outputs = ipi_xml.output_settings(root)
    periodic = options.pbc or ipi_xml.is_variable_cell(root)
    run_input = os.path.join(workdir, os.path.basename(input_path).removesuffix(".xml") + ".so3k.xml")
    tree.write(run_input)
    display = None if options.quiet else Progress(
        total=outputs.total_steps, description=description or os.path.basename(input_path), unit="step",
        completed=outputs.start_step)
    say = _Messages(display)
    if os.path.exists(os.path.join(workdir, "EXIT")):
        os.unlink(os.path.join(workdir, "EXIT"))  # i-PI would stop at its first step
        say(f"removed a stale EXIT file from {workdir}")
    if sockets is not None and sockets.mode in ("unix", "shm"):
        try:
            if remove_stale_unix_socket(sockets.unix_path):
                say(f"removed stale socket file {sockets.unix_path}")
        except FileExistsError as error:
            raise UserError(str(error)) from None
    run = _Run(options, workdir, command + [run_input], environment, sockets, outputs, periodic, say, display)
    try:
        return run.execute()
    finally:
        if display is not None:
            display.close()


class _Messages:
    """Lines above the progress display (nothing when quiet)."""

    def __init__(self, display: Progress | None):
        self.display = display

    def __call__(self, text: str) -> None:
        if self.display is not None:
            self.display.log(f"so3k run: {text}")


class _Run:
    def __init__(self, options, workdir, ipi_command, environment, sockets, outputs, periodic, say, display):
        self.options, self.workdir, self.ipi_command, self.environment = options, workdir, ipi_command, environment
        self.sockets, self.outputs, self.periodic, self.say = sockets, outputs, periodic, say
        self.display = display
        self.run_input = ipi_command[-1]
        self.ipi: subprocess.Popen | None = None
        self.drivers: list[subprocess.Popen] = []
        self.logs: list = []
        self.stop_requested = False
        self.started = time.time()
        self.last_step: int | None = None

    # ---------------------------------------------------------------------------------------
    def execute(self) -> RunResult:
        catch = threading.current_thread() is threading.main_thread()  # signal handlers: main thread only
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if catch else {}
        try:
            self._start_ipi()
            self._wait_for_socket()
            self._start_drivers()
            interrupted = self._monitor()
            return RunResult(interrupted, self.workdir, self.last_step, time.time() - self.started)
        finally:
            self._stop_all()
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
        self.ipi = subprocess.Popen(self.ipi_command, cwd=self.workdir, stdout=self._log("ipi.log"),
                                    stderr=subprocess.STDOUT, start_new_session=True, env=self.environment)
        s = self.sockets
        if s is None:
            where = "model inside i-PI (<ffdirect>)"
        else:
            where = f"{s.mode} {s.unix_path if s.mode != 'inet' else f'{s.address}:{s.port}'}, batch size {s.batch_size}"
        self.say(f"i-PI started (pid {self.ipi.pid}, {where}); log {self.ipi_log_path}")

    def _wait_for_socket(self):
        if self.sockets is None or self.sockets.mode == "inet":
            return  # no socket, or the driver retries its TCP connection with backoff
        deadline = time.monotonic() + SOCKET_WAIT_S
        while not os.path.exists(self.sockets.unix_path):
            if self.ipi.poll() is not None:
                raise RunFailed(f"i-PI exited (status {self.ipi.returncode}) before opening its socket:\n"
                                + _tail(self.ipi_log_path))
            if self.stop_requested:
                raise RunFailed("interrupted before i-PI opened its socket")
            if time.monotonic() > deadline:
                raise RunFailed(f"i-PI did not create {self.sockets.unix_path} within {SOCKET_WAIT_S:.0f} s")
            time.sleep(0.1)

    def driver_command(self) -> list[str]:
        o, s = self.options, self.sockets
        command = [sys.executable, "-m", "so3k_driver.cli", "serve", o.model, "--structure", self.run_input,
                   "--connections", str(o.connections)]
        if s.mode == "inet":
            command += ["--inet", f"{s.address}:{s.port}"]
        else:
            command += ["--unix", s.address, "--prefix", s.prefix] + (["--shm"] if s.mode == "shm" else [])
        if self.periodic:
            command.append("--pbc")
        if o.dtype:
            command += ["--dtype", o.dtype]
        if o.device:
            command += ["--device", o.device]
        return command + ["--max-force", str(o.max_force)] + list(o.driver_options)

    def _start_drivers(self):
        if self.sockets is None:
            return
        for index in range(self.options.drivers):
            self.drivers.append(subprocess.Popen(
                self.driver_command(), cwd=self.workdir, stdout=self._log(f"so3k_driver_{index}.log"),
                stderr=subprocess.STDOUT, start_new_session=True))

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
            for index, driver in enumerate(self.drivers):
                if driver.poll() not in (None, 0):
                        raise RunFailed(f"driver {index} exited with status {driver.returncode}; i-PI stopped, "
                                    f"RESTART kept in {self.workdir}.\n"
                                    + _tail(os.path.join(self.workdir, f"so3k_driver_{index}.log")))
            if self.stop_requested:
                self.say("stopping; i-PI writes RESTART")
                self._stop_all()
                return True
            if time.monotonic() - last_change > timeout:
                raise RunFailed(f"no progress for {timeout:.0f} s; stopped i-PI and the drivers")

    def _finished(self) -> None:
        rc = self.ipi.returncode
        deadline = time.monotonic() + DRIVER_STOP_GRACE_S
        for driver in self.drivers:
            try:
                driver.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if rc != 0:
            raise RunFailed(f"i-PI exited with status {rc}:\n" + _tail(self.ipi_log_path))
        self.say(f"done in {time.time() - self.started:.1f} s; outputs in {self.workdir}")

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
        if self.sockets is not None and self.sockets.mode != "inet" and self.ipi is not None:
            try:
                remove_stale_unix_socket(self.sockets.unix_path)
            except (FileExistsError, OSError):
                pass


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).rstrip()
    except OSError:
        return f"(no log at {path})"


__all__ = ["RunOptions", "RunResult", "run_simulation"]
