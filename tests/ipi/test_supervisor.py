"""ipi/supervisor.py: the no-progress watchdog (ProgressClock) counts time the run could have progressed,
not time this process was stopped (SIGSTOP) together with the run; i-PI's environment; kill_now waits for
the whole process group."""

import os

import pytest

from so3k_driver.ipi.supervisor import POLL_S, STOPPED_GAP_S, ProgressClock, process_runs

needs_proc = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states from /proc (Linux)")


def polled(clock: ProgressClock, start: float, seconds: float) -> float:
    """Poll every POLL_S for ``seconds``; returns the time reached."""
    now = start
    for _ in range(round(seconds / POLL_S)):
        now += POLL_S
        clock.poll(now)
    return now


def test_a_run_without_progress_is_stalled_for_the_time_since_its_last_step():
    clock = ProgressClock(100.0)
    now = polled(clock, 100.0, 20.0)
    clock.progressed(now)
    now = polled(clock, now, 12.0)
    assert abs(clock.stalled_for(now) - 12.0) < 1e-9


def test_time_stopped_with_the_run_is_not_counted_but_a_slow_run_is():
    clock = ProgressClock(0.0)
    now = polled(clock, 0.0, 5.0)
    now += 14 * 60.0  # SIGSTOP for 14 minutes, then SIGCONT: the next poll comes late
    clock.poll(now)
    assert clock.stalled_for(now) < 6.0
    now = polled(clock, now, 600.0)  # then no step for 600 s while polling normally: stalled
    assert clock.stalled_for(now) > 600.0
    # a poll delayed by a loaded machine, but under the gap, counts in full
    late = now + 0.9 * STOPPED_GAP_S
    clock.poll(late)
    assert clock.stalled_for(late) > 600.0 + 0.9 * STOPPED_GAP_S


def test_ipi_starts_with_one_blas_thread_unless_the_user_chose():
    """OpenBLAS threads spinning in i-PI took the cores from the model (105 -> 85 ms per study step)."""
    from so3k_driver.ipi.run_setup import IPI_THREAD_LIMITS, ipi_environment

    environment = ipi_environment({"PATH": "/usr/bin"})
    assert environment["PATH"] == "/usr/bin" and environment["OPENBLAS_NUM_THREADS"] == "1"
    assert all(environment[name] == "1" for name in IPI_THREAD_LIMITS)
    chosen = ipi_environment({"OMP_NUM_THREADS": "4"})
    # the user's choice stands, and no other thread limit is added
    assert chosen["OMP_NUM_THREADS"] == "4" and not set(IPI_THREAD_LIMITS) - {"OMP_NUM_THREADS"} & set(chosen)


def _group_of_two(tmp_path):
    """A session leader whose child sleeps too: (leader process, the child's pid)."""
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "child.pid"
    script = ("import subprocess, sys, time\n"
              "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
              "time.sleep(60)\n")
    leader = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the leader never started its child"
        time.sleep(0.05)
    return leader, int(pid_file.read_text())


@needs_proc
def test_kill_now_returns_only_when_the_whole_group_has_exited(tmp_path):
    """An i-PI resumed right after kill_now found its killed predecessor still listening on the run's
    address: the watcher had been reaped, the command it watched was still exiting."""
    import signal

    from so3k_driver.ipi.supervisor import kill_now, wait_for_group_exit

    leader, child = _group_of_two(tmp_path)
    try:
        assert not wait_for_group_exit(leader.pid, 0.3)  # both alive: it waits, then says so
        kill_now(leader)
        assert leader.returncode == -signal.SIGKILL and not process_runs(child)
        assert wait_for_group_exit(leader.pid, 0.0)
    finally:
        for pid in (leader.pid, child):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        leader.wait()


@needs_proc
def test_a_group_of_zombies_counts_as_exited(tmp_path):
    """A killed process nobody has reaped yet has closed its sockets; waiting for its reaping could last
    for ever (its parent decides)."""
    import signal
    import subprocess
    import sys
    import time

    from so3k_driver.ipi.supervisor import wait_for_group_exit

    leader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        os.kill(leader.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_runs(leader.pid):  # dead, but left unreaped: a zombie
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.killpg(leader.pid, 0)  # the group still exists for the kernel
        started = time.monotonic()
        assert wait_for_group_exit(leader.pid, 5.0) and time.monotonic() - started < 1.0
    finally:
        leader.wait()
