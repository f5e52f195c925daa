"""sampling/study_lock.py: one run at a time per study folder. A second run, a change of model or a new
study prepared in its place is refused in one line while another process holds the folder, and the lock
lasts as long as any process of the run (i-PI included) is alive, however the run's own process ends."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import study_held_elsewhere
from so3k_driver.cli.main import main as so3k
from so3k_driver.errors import UserError
from so3k_driver.sampling import plumed_inputs, run as sampling_run, study_lock
from so3k_driver.sampling.settings import MetadSettings, StudySettings



def prepare_study(folder: Path, steps: int = 10) -> None:
    structure = plumed_inputs.bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    sampling_run.prepare(folder, StudySettings(structure=str(structure), model="ala3-xtb", temperatures=(300.0,),
                                               steps=steps, output_stride=1, metad=MetadSettings(cv="none"),
                                               backend="direct"))


def processes_holding(path: Path) -> set[int]:
    """PIDs with ``path`` open (from /proc/PID/fd)."""
    target, pids = str(path.resolve()), set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) == target for fd in (entry / "fd").iterdir()):
                pids.add(int(entry.name))
        except OSError:  # gone, or not ours
            continue
    return pids


def processes_in(folder: Path) -> set[int]:
    """PIDs whose working directory is ``folder`` (i-PI runs in the study folder)."""
    target, pids = str(folder.resolve()), set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd") == target:
                pids.add(int(entry.name))
        except OSError:
            continue
    return pids


def snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()
            if p.name != study_lock.LOCK_FILE}


def test_while_a_study_is_held_every_writer_is_refused_in_one_line_and_nothing_changes(tmp_path, capsys):
    study = tmp_path / "study"
    prepare_study(study)
    before = snapshot(study)
    with study_held_elsewhere(study) as holder:
        assert study_lock.holder(study).startswith(f"process {holder.pid} (and its i-PI) on ")
        assert re.search(r", since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", study_lock.holder(study))  # as pieces.jsonl
        for command in (["sample", "run", str(study)], ["sample", "run", str(study), "--model", "ala3-xtb"]):
            assert so3k(command) == 2
            error = capsys.readouterr().err.strip().splitlines()
            assert len(error) == 1 and f"is being run by process {holder.pid}" in error[0]
        with pytest.raises(UserError, match="before you change its model"):
            sampling_run.change_model(study, "ala3-xtb")
        with pytest.raises(UserError, match="before you prepare a new study in its place"):
            sampling_run.prepare(study, StudySettings.load(study), force=True)
        assert snapshot(study) == before and not list(tmp_path.glob("study.bck.*"))  # nothing moved or written
    # the kernel dropped the killed holder's lock: no stale lock, the study runs
    assert study_lock.holder(study) is None
    assert sampling_run.run_study(study).last_step == 10
    assert study_lock.holder(study) is None and (study / study_lock.LOCK_FILE).read_text() == ""


def test_a_killed_runs_ipi_holds_the_lock_and_stops_cleanly(tmp_path):
    """kill -9 of so3k sample run: its i-PI (own session, behind a parent_watch process) holds the study's
    lock too (it inherited the lock's open file, and a flock belongs to that). When the run dies the watcher
    is signalled and passes one SIGTERM on: i-PI stops cleanly, writing RESTART, the lock goes with it, and
    the next piece continues from that RESTART with every step once."""
    from so3k_driver.ipi.properties import read_properties

    study = tmp_path / "study"
    prepare_study(study, steps=1_000_000)
    lock = study / study_lock.LOCK_FILE
    run = subprocess.Popen([sys.executable, "-m", "so3k_driver.cli.main", "sample", "run", str(study), "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (study / "sim.out").exists() or len((study / "sim.out").read_text().splitlines()) < 30:
            assert run.poll() is None and time.monotonic() < deadline, "no MD steps"
            time.sleep(0.2)
        watcher_and_ipi = processes_in(study) - {run.pid}
        assert len(watcher_and_ipi) == 2 and processes_holding(lock) == watcher_and_ipi | {run.pid}
        run.kill()  # no clean-up by the run itself
        run.wait()
        deadline = time.monotonic() + 60
        while processes_in(study) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not processes_in(study), "the orphaned i-PI did not stop"
    finally:
        run.kill()
        for pid in processes_holding(lock) | processes_in(study):
            os.kill(pid, signal.SIGKILL)
    log = (study / "ipi.log").read_text()
    assert log.count("Kill signal. Trying") == 1 and "Restartable as is: YES" in log  # one SIGTERM, a soft exit
    assert study_lock.holder(study) is None and (study / "RESTART").is_file()
    piece = sampling_run.run_study(study, total_steps=sampling_run.planned_run(study)[2] + 5)
    assert piece.resumed_from.name == "RESTART" and piece.first_step > 20
    steps = read_properties(study / "sim.out")["step"].astype(int).tolist()
    assert steps == list(range(piece.last_step + 1))  # every step once


def test_a_file_system_without_flock_runs_unlocked(tmp_path, monkeypatch):
    def no_flock(handle, operation):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(study_lock.fcntl, "flock", no_flock)
    with study_lock.exclusive_study(tmp_path) as descriptor:
        assert descriptor is None
        assert study_lock.holder(tmp_path) is None


def test_a_batch_systems_sigterm_ends_the_piece_cleanly_and_the_next_piece_continues(tmp_path):
    """What a job's time limit does (timeout -s TERM, or SLURM's SIGTERM before its SIGKILL): i-PI writes
    RESTART, the piece is logged as interrupted, the lock is gone with nothing left running, and the next
    piece continues from that step with every step written once."""
    from so3k_driver.ipi.properties import read_last_record, read_properties
    from so3k_driver.sampling import pieces

    study = tmp_path / "study"
    prepare_study(study, steps=100_000)
    run = subprocess.Popen([sys.executable, "-m", "so3k_driver.cli.main", "sample", "run", str(study), "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not ((study / "sim.out").exists() and (read_last_record(study / "sim.out") or {}).get("step", 0) >= 20):
            assert run.poll() is None and time.monotonic() < deadline, "no MD steps"
            time.sleep(0.2)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
        for pid in processes_in(study):
            os.kill(pid, signal.SIGKILL)
    assert run.returncode == 130, stderr[-2000:]
    stopped = pieces.read_pieces(study)[-1]["end"]
    assert stopped["outcome"] == "interrupted" and stopped["last_step"] >= 20
    assert f"stopped at step {stopped['last_step']} of 100000; continue with: so3k sample run" in stderr
    assert (study / "RESTART").is_file() and study_lock.holder(study) is None and not processes_in(study)

    piece = sampling_run.run_study(study, total_steps=stopped["last_step"] + 5)
    assert (piece.first_step, piece.last_step) == (stopped["last_step"], stopped["last_step"] + 5)
    steps = read_properties(study / "sim.out")["step"].astype(int).tolist()
    assert steps == list(range(stopped["last_step"] + 6))
