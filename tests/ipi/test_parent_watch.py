"""ipi/parent_watch.py: the command behind a watcher gets exactly one SIGTERM when the process that started it
dies (also a parent with many threads, whose death the kernel reports once per thread), and for the
runner the watcher stands for the command: its exit status, its death by a signal."""

import os
import signal
import subprocess
import sys
import time

import pytest

from so3k_driver.ipi.parent_watch import watched
from so3k_driver.ipi.supervisor import process_runs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")

# Counts the SIGTERMs it receives into a file, for a while after the first, then exits 0.
COUNTER = """
import signal, sys, time
count = 0
def on_term(signum, frame):
    global count
    count += 1
signal.signal(signal.SIGTERM, on_term)
open(sys.argv[1] + ".ready", "w").close()
while count == 0:
    time.sleep(0.01)
time.sleep(1.0)
open(sys.argv[1], "w").write(str(count))
"""

# A parent with 8 extra threads that starts the counter behind a watcher, then waits to be killed.
PARENT = """
import subprocess, sys, threading, time
from so3k_driver.ipi.parent_watch import watched
for _ in range(8):
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
child = subprocess.Popen(watched([sys.executable, "-c", sys.argv[1], sys.argv[2]]), start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def wait_for(path, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_a_killed_multithreaded_parent_sends_the_command_exactly_one_sigterm(tmp_path):
    counts = str(tmp_path / "count")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, COUNTER, counts], stdout=subprocess.PIPE, text=True)
    try:
        watcher = int(parent.stdout.readline())
        wait_for(counts + ".ready")
        parent.kill()
        parent.wait()
        wait_for(counts)
        assert open(counts).read() == "1"
        deadline = time.monotonic() + 10
        while process_runs(watcher):
            assert time.monotonic() < deadline, "the watcher outlived its command"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.stdout.close()


def test_a_sigterm_to_the_watcher_reaches_the_command_once(tmp_path):
    counts = str(tmp_path / "count")
    process = subprocess.Popen(watched([sys.executable, "-c", COUNTER, counts]))
    wait_for(counts + ".ready")
    for _ in range(3):
        process.send_signal(signal.SIGTERM)
        time.sleep(0.05)
    assert process.wait(timeout=30) == 0
    assert open(counts).read() == "1"


@pytest.mark.parametrize("script, status", [("import sys; sys.exit(3)", 3),
                                            ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -9),
                                            ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", -15)])
def test_the_watcher_exits_as_its_command_did(script, status):
    assert subprocess.run(watched([sys.executable, "-c", script]), timeout=60).returncode == status


def test_descriptors_passed_to_the_watcher_reach_the_command(tmp_path):
    read_end, write_end = os.pipe()
    try:
        script = f"import os; os.write({write_end}, b'through')"
        subprocess.run(watched([sys.executable, "-c", script]), pass_fds=(write_end,), timeout=60, check=True)
        assert os.read(read_end, 16) == b"through"
    finally:
        os.close(read_end)
        os.close(write_end)


# Starts the printer of its autogroup's nice behind a watcher in a session of its own, after setting its own
# autogroup's nice to argv[1] ("-": left as it is).
PRIORITY_PARENT = """
import subprocess, sys
from so3k_driver.ipi.parent_watch import watched
if sys.argv[1] != "-":
    open("/proc/self/autogroup", "w").write(sys.argv[1])
code = "print(open('/proc/self/autogroup').read().split('nice')[1].strip())"
print(subprocess.run(watched([sys.executable, "-c", code]), start_new_session=True, capture_output=True,
                     text=True, check=True).stdout.strip())
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/autogroup"), reason="no scheduling autogroups")
@pytest.mark.parametrize("increment, autogroup", [(0, None), (7, None), (0, 5), (3, 17)])
def test_the_command_runs_at_the_priority_of_the_process_that_started_it(increment, autogroup):
    """Its own session is a new autogroup at nice 0: a niced study's i-PI would compete at full weight."""
    parent_nice = min(19, os.getpriority(os.PRIO_PROCESS, 0) + increment)  # the tests may run niced themselves
    result = subprocess.run(["nice", "-n", str(increment), sys.executable, "-c", PRIORITY_PARENT,
                             "-" if autogroup is None else str(autogroup)], capture_output=True, text=True,
                            timeout=60, start_new_session=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == max(parent_nice, autogroup or 0)
