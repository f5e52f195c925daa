"""Run a command that is stopped cleanly when the process that started it dies:
``python -m so3k_driver.ipi.parent_watch PARENT_PID COMMAND...``.

The runner starts i-PI and the drivers in sessions of their own, so that Ctrl-C reaches the runner first
and it can stop them in order. The price: a runner killed without a chance to clean up (``kill -9``, the
OOM killer) left them running, an orphaned i-PI writing into the run folder until its last step.

This watcher sits between the runner and the command. Linux sends it SIGTERM when the runner dies
(``prctl(PR_SET_PDEATHSIG)``); it passes one SIGTERM on to the command, whose soft exit (i-PI: RESTART
written) it then waits for. One and only one: the kernel signals a dying multi-threaded parent's child
once per exiting thread, and a second SIGTERM makes i-PI quit at once, without RESTART. Should the watcher
itself be killed, the command gets one SIGTERM too (its own parent-death signal; the watcher has one
thread). Any signal the watcher receives is passed on once per kind; the command's exit status becomes
the watcher's (a death by signal N is repeated as signal N), so for the runner the watcher stands for the
command. File descriptors the runner passed (a study's lock) are passed on, and so is the runner's
scheduling priority (``keep_parent_priority``). Elsewhere than Linux the command runs unwatched.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def stop_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> bool:
    """Ask for ``signum`` when the parent dies (Linux); False when the parent is already gone."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    return os.getppid() == parent_pid


def _autogroup_nice(pid: int | str) -> int:
    with open(f"/proc/{pid}/autogroup") as handle:  # "/autogroup-339 nice 19"
        return int(handle.read().split("nice")[1])


def keep_parent_priority(parent_pid: int) -> None:
    """Give this process's scheduling autogroup the priority the parent ran at (Linux with autogroups).

    The runner starts i-PI and the drivers in sessions of their own, and a new session is a new autogroup at
    nice 0, which competes with the user's other sessions at full weight whatever the processes' own nice.
    So `nice -n 19 so3k sample run` beside other work (or a session whose autogroup was set to 19) gave
    the study's i-PI (the model too, with --backend direct) an equal share of the cores. The new autogroup
    gets the larger of the parent's autogroup nice and the parent's own nice. Raising it needs no privilege;
    where it cannot be set (no autogroups, a lower value without CAP_SYS_NICE) it is left as it is.
    """
    try:
        wanted = max(_autogroup_nice(parent_pid), os.getpriority(os.PRIO_PROCESS, parent_pid))
        if wanted != _autogroup_nice("self"):
            with open("/proc/self/autogroup", "w") as handle:
                handle.write(str(wanted))
    except (OSError, ValueError, IndexError):
        pass


def watched(command: list[str]) -> list[str]:
    """``command`` started through this watcher, watching the calling process."""
    return [os.path.abspath(sys.executable), "-m", __name__, str(os.getpid()), *command]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parent, command = int(argv[0]), argv[1:]
    passed, child = set(), None

    def pass_on(signum, frame):
        if signum not in passed:
            passed.add(signum)
            child.send_signal(signum)

    # held back until the command runs: a stop requested meanwhile is passed on, not lost
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    for signum in FORWARDED:
        signal.signal(signum, pass_on)
    if not stop_with_parent(parent):
        sys.exit(128 + signal.SIGTERM)  # as if it had come: the parent died before it could be watched
    keep_parent_priority(parent)
    watcher = os.getpid()

    def setup_child():  # one thread here, so preexec_fn is safe
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        if not stop_with_parent(watcher):
            os._exit(128 + signal.SIGTERM)

    # close_fds=False: the command gets the descriptors the runner passed (a study's lock)
    child = subprocess.Popen(command, close_fds=False, preexec_fn=setup_child)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    status = child.wait()
    if status < 0:  # died of a signal: die of the same one, so the runner sees what the command did
        if -status in FORWARDED:
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    sys.exit(status)


if __name__ == "__main__":
    main()
