"""ipi/supervisor.py ProgressClock: the no-progress watchdog counts time the run could have progressed,
not time this process was stopped (SIGSTOP) together with the run."""

from so3k_driver.ipi.supervisor import POLL_S, STOPPED_GAP_S, ProgressClock


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
