"""One start of i-PI and its drivers, supervised until i-PI exits or a stop is requested (``_Run``).

Starts i-PI and, for an ``<ffsocket>`` input, one driver process per slot (``python -m
so3k_driver.ipi.serving OPTIONS.json``), all in their own sessions and stopped with SIGTERM should the
runner die first (parent_watch.py); shows i-PI's progress; restarts
crashed drivers (bounded, with a doubling pause) and raises for driver errors that would recur;
keeps the newest numbered checkpoints; stops everything cleanly (SIGTERM to i-PI: RESTART written,
EXIT sent to the drivers). An i-PI crash is raised as IpiCrashed for so3k_driver.ipi.runner to
resume from a checkpoint; failures beyond healing as RunFailed, read back from the logs.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

from . import ipi_xml, recovery
from .compute import DIRECT_ERROR_LINE, DRIVER_ERROR_LINE
from .parent_watch import watched
from .progress import ProgressReader, StepProgress
from .run_setup import RunOptions, _Piece, resume_command, stats_file_name
from .serving import EXIT_WOULD_RECUR, GPU_MEMORY_DEFAULTS, ServeOptions, write_options
from .transport import remove_stale_unix_socket
from ..errors import IpiCrashed, RunFailed
from ..evaluation.host_memory import child_environment

SOCKET_WAIT_S = 60.0
IPI_STOP_GRACE_S = 30.0
DRIVER_STOP_GRACE_S = 10.0
GROUP_EXIT_WAIT_S = 10.0  # a SIGKILLed process exits in milliseconds; this bounds a wait that should never be reached
POLL_S = 0.25
FIRST_RESTART_PAUSE_S = 1.0  # then 2, 4, ... s
MAX_RESTART_PAUSE_S = 30.0
DRIVER_OPTIONS_FILE = "so3k_driver.json"
IPI_RESET_SIGNATURE = "ConnectionResetError"
# A poll that comes this much later than POLL_S means this process was stopped (SIGSTOP, a suspended shell
# job) and, most likely, the run with it: that time is not a run making no progress.
STOPPED_GAP_S = 30.0


class ProgressClock:
    """Seconds since the run last made progress, not counting time this process was stopped.

    A study paused with SIGSTOP for 14 minutes and continued was stopped as "no progress for 600 s" the
    moment it woke up (2026-12-04): the wall time of the pause counted.
    """

    def __init__(self, now: float):
        self.last_change = self.last_poll = now

    def progressed(self, now: float) -> None:
        self.last_change = now

    def poll(self, now: float) -> None:
        gap = now - self.last_poll
        if gap > STOPPED_GAP_S:
            self.last_change += gap
        self.last_poll = now

    def stalled_for(self, now: float) -> float:
        return now - self.last_change


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
        self.ipi = subprocess.Popen(watched(self.piece.ipi_command), cwd=self.workdir, stdout=self._log("ipi.log"),
                                    stderr=subprocess.STDOUT, start_new_session=True, env=self.piece.environment,
                                    pass_fds=self.options.inherited_fds)
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
        environment = child_environment(os.environ)
        for key, value in GPU_MEMORY_DEFAULTS.items():
            environment.setdefault(key, value)
        socket, _ = self.slots[index]
        return subprocess.Popen(watched(command or self.driver_command(socket)), cwd=self.workdir,
                                stdout=self._log(os.path.basename(self.driver_log(index))), stderr=subprocess.STDOUT,
                                start_new_session=True, env=environment, pass_fds=self.options.inherited_fds)

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
        clock = ProgressClock(time.monotonic())
        timeout = self.options.timeout_s
        while True:
            time.sleep(POLL_S)
            clock.poll(time.monotonic())
            progress = reader.read()
            if progress is not None and progress.step != self.last_step:
                self.last_step = progress.step
                clock.progressed(time.monotonic())
                self._show(progress)
            if self.ipi.poll() is not None:
                self._finished()
                return False
            if self._heal_drivers():
                clock.progressed(time.monotonic())  # a restarted driver compiles the model again
            if self.driver_restarts and self._ipi_socket_thread_died():
                raise self._hung_by_reset()
            if self.stop_requested:
                self.say("stopping; i-PI writes RESTART")
                self._stop_all()
                return True
            self._rotate_checkpoints()
            if clock.stalled_for(time.monotonic()) > timeout:
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
        kill_now(self.ipi)  # a soft exit would wait on the dead thread; the checkpoints are what we resume from
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
                kill_now(self.ipi)  # e.g. hung after a client reset; last checkpoint stays
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


def kill_now(process: subprocess.Popen) -> None:
    """SIGKILL a process started through parent_watch and the command it watches (its process group: both
    were started in a session of their own), reap it, and wait until the command has exited too. Killing
    the watcher alone would only send the command the SIGTERM of a clean stop.

    The watcher is reaped as soon as it dies, but the command may still be exiting then, with its files
    open: an i-PI resumed at once found its own predecessor still listening on the run's address and
    refused to start ("in use by a running i-PI"; 5 of 10 resumes after a reset, docs/reliability.md)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    wait_for_group_exit(process.pid, GROUP_EXIT_WAIT_S)


def wait_for_group_exit(group: int, timeout: float) -> bool:
    """Wait until no process of process group ``group`` runs; True then, False after ``timeout`` s.

    Zombies count as gone: a zombie has closed its files and sockets, and its new parent (init, once the
    watcher is dead) reaps it when it will.
    """
    deadline = time.monotonic() + timeout
    while _group_runs(group):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _group_runs(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not os.path.isdir("/proc"):
        return True  # no process table to tell zombies from the living: wait until the group is gone
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and process_runs(int(entry.name), group):
            return True
    return False


def process_runs(pid: int, group: int | None = None) -> bool:
    """True while ``pid`` runs (Linux, /proc): not gone, not a zombie; with ``group``, only if it belongs to it."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
            state, _, pgrp = handle.read().rpartition(")")[2].split()[:3]
    except (OSError, ValueError):
        return False  # exited while we looked
    return state not in ("Z", "X") and (group is None or int(pgrp) == group)


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
