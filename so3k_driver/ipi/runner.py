"""``so3k run``: i-PI plus so3k drivers as child processes, with progress and clean shutdown.

Children run in their own sessions, so a Ctrl-C in the terminal reaches only this process; it
then sends SIGTERM to i-PI, which writes RESTART and sends EXIT to the drivers (soft exit).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from . import ipi_xml
from .progress import ProgressReader, format_progress
from .transport import remove_stale_unix_socket
from ..errors import RunFailed, UserError

SOCKET_WAIT_S = 60.0
IPI_STOP_GRACE_S = 30.0
DRIVER_STOP_GRACE_S = 10.0



def ipi_command() -> list[str]:
    """The ``i-pi`` script of this environment (beside the Python running us), else from PATH."""
    local = os.path.join(os.path.dirname(sys.executable), "i-pi")
    if os.path.exists(local):
        return [local]
    found = shutil.which("i-pi")
    if found:
        return [found]
    raise FileNotFoundError("i-PI is not installed (pip install ipi)")


def run_simulation(args) -> int:
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    input_path = os.path.abspath(args.input)
    tree = ipi_xml.load(input_path)
    root = tree.getroot()
    ipi_xml.apply_overrides(root, input_dir=os.path.dirname(input_path), structure=args.structure,
                            steps=args.steps, address=args.address, port=args.port,
                            temperature=args.temperature)
    sockets = ipi_xml.socket_settings(root)
    outputs = ipi_xml.output_settings(root)
    periodic = args.pbc or ipi_xml.is_variable_cell(root)
    run_input = os.path.join(workdir, os.path.basename(input_path).removesuffix(".xml") + ".so3k.xml")
    tree.write(run_input)
    if sockets.mode in ("unix", "shm"):
        try:
            if remove_stale_unix_socket(sockets.unix_path):
                print(f"so3k run: removed stale socket file {sockets.unix_path}", file=sys.stderr)
        except FileExistsError as error:
            raise UserError(str(error)) from None

    run = _Run(args, workdir, run_input, sockets, outputs, periodic)
    return run.execute()


class _Run:
    def __init__(self, args, workdir, run_input, sockets, outputs, periodic):
        self.args, self.workdir, self.run_input = args, workdir, run_input
        self.sockets, self.outputs, self.periodic = sockets, outputs, periodic
        self.ipi: subprocess.Popen | None = None
        self.drivers: list[subprocess.Popen] = []
        self.logs: list = []
        self.stop_requested = False
        self.started = time.time()

    # ---------------------------------------------------------------------------------------
    def execute(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._start_ipi()
            self._wait_for_socket()
            self._start_drivers()
            return self._monitor()
        except RunFailed as error:
            print(f"so3k run: error: {error}", file=sys.stderr)
            self._stop_all()
            return 1
        finally:
            self._stop_all()
            for s, handler in previous.items():
                signal.signal(s, handler)
            for handle in self.logs:
                handle.close()

    def _on_signal(self, signum, frame):
        self.stop_requested = True

    def _log(self, name):
        handle = open(os.path.join(self.workdir, name), "w")
        self.logs.append(handle)
        return handle

    def _start_ipi(self):
        self.ipi_log_path = os.path.join(self.workdir, "ipi.log")
        self.ipi = subprocess.Popen(ipi_command() + [self.run_input], cwd=self.workdir, stdout=self._log("ipi.log"),
                                    stderr=subprocess.STDOUT, start_new_session=True)
        where = self.sockets.unix_path if self.sockets.mode != "inet" else f"{self.sockets.address}:{self.sockets.port}"
        self._say(f"i-PI started (pid {self.ipi.pid}, {self.sockets.mode} {where}, batch size "
                  f"{self.sockets.batch_size}); log {self.ipi_log_path}")

    def _wait_for_socket(self):
        if self.sockets.mode == "inet":
            return  # the driver retries its connection with backoff
        deadline = time.monotonic() + SOCKET_WAIT_S
        while not os.path.exists(self.sockets.unix_path):
            if self.ipi.poll() is not None:
                raise RunFailed(f"i-PI exited (status {self.ipi.returncode}) before opening its socket:\n"
                                + _tail(self.ipi_log_path))
            if self.stop_requested:
                raise RunFailed("interrupted")
            if time.monotonic() > deadline:
                raise RunFailed(f"i-PI did not create {self.sockets.unix_path} within {SOCKET_WAIT_S:.0f} s")
            time.sleep(0.1)

    def driver_command(self) -> list[str]:
        a, s = self.args, self.sockets
        command = [sys.executable, "-m", "so3k_driver.cli", "serve", a.model, "--structure", self.run_input,
                   "--connections", str(a.connections)]
        if s.mode == "inet":
            command += ["--inet", f"{s.address}:{s.port}"]
        else:
            command += ["--unix", s.address, "--prefix", s.prefix] + (["--shm"] if s.mode == "shm" else [])
        if self.periodic:
            command.append("--pbc")
        if a.dtype:
            command += ["--dtype", a.dtype]
        if a.device:
            command += ["--device", a.device]
        return command + ["--max-force", str(a.max_force)] + list(a.driver_option)

    def _start_drivers(self):
        for index in range(self.args.drivers):
            self.drivers.append(subprocess.Popen(
                self.driver_command(), cwd=self.workdir, stdout=self._log(f"so3k_driver_{index}.log"),
                stderr=subprocess.STDOUT, start_new_session=True))

    # ---------------------------------------------------------------------------------------
    def _monitor(self) -> int:
        reader = ProgressReader(self.workdir, self.outputs, since=self.started)
        last_change, last_seen = time.monotonic(), None
        show = not self.args.quiet
        while True:
            time.sleep(0.25)
            progress = reader.read()
            if progress is not None and progress.step != last_seen:
                last_seen, last_change = progress.step, time.monotonic()
                if show:
                    print("\r" + format_progress(progress, self.outputs.total_steps), end="", file=sys.stderr, flush=True)
            if self.ipi.poll() is not None:
                if show and last_seen is not None:
                    print(file=sys.stderr)
                return self._finished()
            for index, driver in enumerate(self.drivers):
                if driver.poll() not in (None, 0):
                    raise RunFailed(f"driver {index} exited with status {driver.returncode}; i-PI stopped, "
                                    f"RESTART kept in {self.workdir}.\n"
                                    + _tail(os.path.join(self.workdir, f"so3k_driver_{index}.log")))
            if self.stop_requested:
                print("\nso3k run: stopping; i-PI writes RESTART", file=sys.stderr)
                self._stop_all()
                restart = os.path.join(self.workdir, "RESTART")
                self._say(f"stopped; resume with: so3k run {restart} --model {self.args.model}")
                return 130
            if time.monotonic() - last_change > self.args.timeout:
                raise RunFailed(f"no progress for {self.args.timeout:.0f} s; stopped i-PI and the drivers")

    def _finished(self) -> int:
        rc = self.ipi.returncode
        deadline = time.monotonic() + DRIVER_STOP_GRACE_S
        for driver in self.drivers:
            try:
                driver.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        if rc != 0:
            raise RunFailed(f"i-PI exited with status {rc}:\n" + _tail(self.ipi_log_path))
        elapsed = time.time() - self.started
        self._say(f"done in {elapsed:.1f} s; outputs in {self.workdir}")
        return 0

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
        if self.sockets.mode != "inet" and self.ipi is not None:
            try:
                remove_stale_unix_socket(self.sockets.unix_path)
            except (FileExistsError, OSError):
                pass

    def _say(self, text):
        if not self.args.quiet:
            print(f"so3k run: {text}", file=sys.stderr)


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).rstrip()
    except OSError:
        return f"(no log at {path})"


__all__ = ["run_simulation", "RunFailed", "ipi_command"]
