"""The fault matrix of docs/reliability.md, measured with real i-PI (and PLUMED) processes.

Every test is bounded in time (subprocess timeouts, wait_for deadlines) and leaves no process
behind (i-PI and drivers are found by their work directory and killed by pid in a finalizer).
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SO3KRATES_RANDOM

pytest.importorskip("ipi", reason="i-PI is not installed (pip install ipi)")
pytestmark = pytest.mark.shared
INPUTS = REPO / "ipi_inputs"
SO3K = [sys.executable, "-m", "so3k_driver.cli"]


def unique(name):
    return f"so3k-fault-{os.getpid()}-{name}"


def nvt_variant(folder: Path, name: str, address: str, steps: int = 100000, checkpoint_stride: int = 4,
                metad_pace: int | None = None) -> Path:
    """ipi_inputs/nvt.xml with every step in the outputs (properties and xyz positions), frequent
    checkpoints, and optionally well-tempered metadynamics on the distance of atoms 1 and 2."""
    text = (INPUTS / "nvt.xml").read_text()
    replacements = [
        ("so3k-nvt", address), ("> 100 <", f"> {steps} <"),
        ("<checkpoint stride='1000'/>", f"<checkpoint stride='{checkpoint_stride}'/>"),
        ("<properties stride='10' ", "<properties stride='1' "),
        ("<trajectory filename='pos' stride='10'", "<trajectory filename='pos' stride='1'"),
    ]
    if metad_pace is not None:
        (folder / "plumed.dat").write_text(
            "UNITS LENGTH=A ENERGY=kj/mol TIME=ps\nd12: DISTANCE ATOMS=1,2 NOPBC\n"
            f"metad: METAD ARG=d12 PACE={metad_pace} HEIGHT=0.5 SIGMA=0.05 BIASFACTOR=10 TEMP=300 FILE=HILLS\n"
            "PRINT ARG=d12,metad.bias STRIDE=1 FILE=COLVAR\nFLUSH STRIDE=1\n")
        replacements += [
            ("  <system>", "  <ffplumed name='plumed'> <file mode='xyz'> ala3.xyz </file> "
                           "<plumed_dat> plumed.dat </plumed_dat> </ffplumed>\n  <system>"),
            ("    <ensemble>\n", "    <ensemble>\n      <bias> <force forcefield='plumed' nbeads='1'/> </bias>\n"),
            ("</simulation>", "  <smotion mode='metad'> <metad> <metaff> [ plumed ] </metaff> </metad> </smotion>\n"
                              "</simulation>"),
        ]
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    (folder / "ala3.xyz").write_text((INPUTS / "ala3.xyz").read_text())
    path = folder / name
    path.write_text(text)
    return path


def pids_of(pattern: str, watchers: bool = False) -> list[int]:
    """PIDs whose command line matches; the parent_watch processes standing between the runner and i-PI or
    a driver (whose command lines include theirs) only with watchers=True."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found if int(pid) != os.getpid() and (watchers or not _is_watcher(int(pid)))]


def _is_watcher(pid: int) -> bool:
    try:
        return b"so3k_driver.ipi.parent_watch" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.fixture
def reaper():
    """Kills, by pid, every i-PI and driver process still running in the folders registered."""
    folders = []
    yield folders.append
    for folder in folders:
        for pid in pids_of(f"i-pi {folder}/", True) + pids_of(f"so3k_driver.ipi.serving {folder}/", True):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def property_steps(path) -> list[int]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    return [int(float(line.split()[0])) for line in lines if line.strip() and not line.startswith("#")]


def trajectory_steps(path) -> list[int]:
    import re

    return [int(m) for m in re.findall(r"Step:\s*(\d+)", Path(path).read_text())]


def start_run(xml, workdir, *options):
    command = SO3K + ["run", str(xml), "--model", SO3KRATES_RANDOM, "--workdir", str(workdir), *options]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(run, timeout):
    try:
        return run.communicate(timeout=timeout)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()


# ----- healing ------------------------------------------------------------------------------------

def test_a_killed_driver_is_restarted_and_no_step_is_lost_or_repeated(tmp_path, reaper):
    reaper(tmp_path)
    xml = nvt_variant(tmp_path, "long.xml", unique("heal"), steps=40)
    run = start_run(xml, tmp_path)
    try:
        wait_for(lambda: len(property_steps(tmp_path / "nvt.out")) > 10, 90, "MD steps")
        driver = pids_of(f"so3k_driver.ipi.serving {tmp_path}/")
        assert len(driver) == 1
        os.kill(driver[0], signal.SIGKILL)
    finally:
        _, stderr = finish(run, 150)
    assert run.returncode == 0, stderr
    assert "driver 0 exited with status -9" in stderr and "starting it again" in stderr
    assert property_steps(tmp_path / "nvt.out") == list(range(41))
    assert trajectory_steps(tmp_path / "nvt.pos_0.xyz") == list(range(41))
    assert pids_of(f"{tmp_path}/", True) == []


def test_a_crashed_ipi_resumes_from_its_checkpoint_and_plumed_extends_its_hills(tmp_path, reaper):
    pytest.importorskip("plumed")
    reaper(tmp_path)
    # PLUMED never deposits at the first update after a (re)start: a checkpoint at step S loses the
    # hill due at S+1 when S+1 is a multiple of PACE. Checkpoints every 4 steps and PACE 4 never do.
    # The kill lands near step 10 of 48: on a busy machine i-PI must not reach its last step first
    # (a kill after the last step is the next test).
    pace, total = 4, 48
    xml = nvt_variant(tmp_path, "metad.xml", unique("resume"), steps=total, metad_pace=pace)
    # the bias stretches bond C1-H2 of a random model: the bond guard is not under test here
    run = start_run(xml, tmp_path, "--auto-resume", "1", "--max-bond-stretch", "0")
    try:
        wait_for(lambda: len(property_steps(tmp_path / "nvt.out")) > 10, 90, "MD steps")
        ipi = pids_of(f"i-pi {tmp_path}/")
        assert len(ipi) == 1
        os.kill(ipi[0], signal.SIGKILL)
    finally:
        _, stderr = finish(run, 150)
    assert run.returncode == 0, stderr
    assert "resuming from" in stderr and "restart_" in stderr
    assert property_steps(tmp_path / "nvt.out") == list(range(total + 1))
    assert trajectory_steps(tmp_path / "nvt.pos_0.xyz") == list(range(total + 1))
    hills = np.loadtxt(tmp_path / "HILLS", comments="#", ndmin=2)
    times = hills[:, 0].round().astype(int).tolist()
    assert times == sorted(set(times)) and len(times) == total // pace  # extended, nothing twice or lost
    colvar = np.loadtxt(tmp_path / "COLVAR", comments="#", ndmin=2)[:, 0]
    assert np.all(np.diff(colvar) > 0)
    numbered = [p for p in tmp_path.glob("nvt.restart_*") if p.name.rpartition("_")[2].isdigit()]
    assert 1 <= len(numbered) <= 3  # the newest K=3 numbered checkpoints


def test_an_ipi_killed_after_its_last_step_is_not_resumed_and_the_run_is_complete(tmp_path, reaper, monkeypatch):
    from so3k_driver.errors import IpiCrashed
    from so3k_driver.ipi import runner

    reaper(tmp_path)
    real_execute = runner._Run.execute

    def killed_while_exiting(self):
        real_execute(self)  # the whole run, final RESTART included
        raise IpiCrashed("i-PI exited with status -9 after its last step")

    monkeypatch.setattr(runner._Run, "execute", killed_while_exiting)
    xml = nvt_variant(tmp_path, "short.xml", unique("lastkill"), steps=6)
    result = runner.run_simulation(runner.RunOptions(input=str(xml), model=SO3KRATES_RANDOM, workdir=str(tmp_path),
                                                     auto_resume=1, quiet=True))
    assert (result.last_step, result.resumes, result.interrupted) == (6, 0, False)
    assert property_steps(tmp_path / "nvt.out") == list(range(7))
    # Running the finished checkpoint again is refused in one line, before i-PI starts.
    again = so3k("run", str(tmp_path / "RESTART"), "--model", SO3KRATES_RANDOM, "--workdir", str(tmp_path))
    assert again.returncode == 2
    assert "has already run all 6 steps" in one_error_line(again) and "--steps" in one_error_line(again)


@pytest.mark.slow  # two runs; the default suite covers resuming through the auto-resume test
def test_without_auto_resume_a_crashed_ipi_names_its_checkpoint_and_the_resume_command(tmp_path, reaper):
    reaper(tmp_path)
    xml = nvt_variant(tmp_path, "long.xml", unique("crash"))
    run = start_run(xml, tmp_path)
    try:
        wait_for(lambda: len(property_steps(tmp_path / "nvt.out")) > 9, 90, "MD steps")
        os.kill(pids_of(f"i-pi {tmp_path}/")[0], signal.SIGKILL)
    finally:
        _, stderr = finish(run, 60)
    assert run.returncode == 1
    [line] = [line for line in stderr.splitlines() if "error" in line]
    assert "i-PI exited with status -9" in line and f"--workdir {tmp_path}" in line
    checkpoint = line.split("resume with: so3k run ")[1].split()[0]
    assert Path(checkpoint).name.startswith("nvt.restart_")
    assert pids_of(f"{tmp_path}/", True) == []
    # The printed command resumes in the same folder without writing any step twice.
    resumed = subprocess.run(SO3K + ["run", checkpoint, "--model", SO3KRATES_RANDOM, "--workdir", str(tmp_path),
                                     "--steps", "16", "--quiet"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert property_steps(tmp_path / "nvt.out") == list(range(17))


@pytest.mark.slow
def test_the_force_guard_names_the_last_checkpoint_before_the_first_abnormal_step(tmp_path, reaper):
    reaper(tmp_path)
    xml = nvt_variant(tmp_path, "short.xml", unique("guard"), steps=9, checkpoint_stride=2)
    first = subprocess.run(SO3K + ["run", str(xml), "--model", SO3KRATES_RANDOM, "--workdir", str(tmp_path),
                                   "--quiet"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    # Continue with a force limit no structure meets: the guard trips at the first new step (10).
    guarded = subprocess.run(SO3K + ["run", str(tmp_path / "RESTART"), "--model", SO3KRATES_RANDOM, "--workdir",
                                     str(tmp_path), "--steps", "20", "--max-force", "0.001", "--quiet"],
                             capture_output=True, text=True, timeout=120)
    assert guarded.returncode == 1
    [line] = [line for line in guarded.stderr.splitlines() if "error" in line]
    assert "above the limit" in line and "last checkpoint before step 10" in line and "1-based" in line
    checkpoint = line.split("resume from it with: so3k run ")[1].split()[0]
    assert Path(checkpoint).name.startswith("nvt.restart_") and f"--workdir {tmp_path}" in line
    assert pids_of(f"{tmp_path}/", True) == []


def test_ctrl_c_prints_a_resume_command_with_the_working_folder(tmp_path, reaper):
    reaper(tmp_path)
    workdir = tmp_path / "elsewhere"
    xml = nvt_variant(tmp_path, "long.xml", unique("ctrlc"))
    run = start_run(xml, workdir)
    try:
        wait_for(lambda: len(property_steps(workdir / "nvt.out")) > 3, 90, "MD steps")
        run.send_signal(signal.SIGINT)
    finally:
        _, stderr = finish(run, 60)
    assert run.returncode == 130
    assert f"resume with: so3k run {workdir / 'RESTART'} --model {SO3KRATES_RANDOM} --workdir {workdir}" in stderr


# ----- bad inputs: one line, exit 2, nothing started ------------------------------------------------

def so3k(*args, timeout=60, env=None):
    return subprocess.run(SO3K + list(args), capture_output=True, text=True, timeout=timeout, env=env)


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unknown_element_is_refused_before_ipi_starts(tmp_path, reaper):
    reaper(tmp_path)
    xml = nvt_variant(tmp_path, "xe.xml", unique("xe"))
    lines = (tmp_path / "ala3.xyz").read_text().splitlines()
    lines[4] = "Xe" + lines[4][1:] if lines[4].startswith("C") else "Xe " + " ".join(lines[4].split()[1:])
    (tmp_path / "ala3.xyz").write_text("\n".join(lines) + "\n")
    # The bundled model knows H, C, N, O (the authors' mlff: layouts accept every element).
    result = so3k("run", str(xml), "--model", "ala3-xtb", "--workdir", str(tmp_path / "run"))
    assert result.returncode == 2
    line = one_error_line(result)
    assert "Xe (first at atom 3, 1-based)" in line and "unknown" in line
    assert not (tmp_path / "run" / "ipi.log").exists()


@pytest.mark.parametrize("case", ["workdir_is_a_file", "workdir_unwritable", "malformed_xml", "truncated_model"])
def test_bad_inputs_end_in_one_line_before_ipi_starts(tmp_path, case, reaper):
    reaper(tmp_path)
    xml = nvt_variant(tmp_path, "nvt.xml", unique(case))
    model, workdir = SO3KRATES_RANDOM, tmp_path / "run"
    expected = {"workdir_is_a_file": "is a file", "workdir_unwritable": "cannot create work directory",
                "malformed_xml": "not valid XML", "truncated_model": "model file"}[case]
    if case == "workdir_is_a_file":
        workdir.write_text("not a folder")
    elif case == "workdir_unwritable":
        workdir = Path("/proc/so3k-cannot-write-here")
    elif case == "malformed_xml":
        xml.write_text(xml.read_text()[:400])
    else:
        from so3k_driver.io.model_files import load_model, save_model

        config, params, _ = load_model(SO3KRATES_RANDOM)
        path = save_model(tmp_path / "model.so3k", config, params)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        model = str(path)
    result = so3k("run", str(xml), "--model", model, "--workdir", str(workdir))
    assert result.returncode == 2, result.stderr
    assert expected in one_error_line(result)
    assert not (tmp_path / "run" / "ipi.log").exists() if workdir.is_dir() else True


def test_a_socket_address_in_use_is_refused(tmp_path, reaper):
    reaper(tmp_path)
    address = unique("busy")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(f"/tmp/ipi_{address}")
    listener.listen(1)
    try:
        xml = nvt_variant(tmp_path, "nvt.xml", address)
        result = so3k("run", str(xml), "--model", SO3KRATES_RANDOM, "--workdir", str(tmp_path / "run"))
    finally:
        listener.close()
        os.unlink(f"/tmp/ipi_{address}")
    assert result.returncode == 2
    assert "in use by a running i-PI" in one_error_line(result)


def test_an_inet_port_in_use_is_refused_before_ipi_starts(tmp_path, reaper):
    reaper(tmp_path)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        text = (INPUTS / "nvt.xml").read_text().replace("mode='unix'", "mode='inet'")
        (tmp_path / "ala3.xyz").write_text((INPUTS / "ala3.xyz").read_text())
        (tmp_path / "inet.xml").write_text(text)
        result = so3k("run", str(tmp_path / "inet.xml"), "--model", SO3KRATES_RANDOM, "--address", "127.0.0.1",
                      "--port", str(port), "--workdir", str(tmp_path / "run"))
    finally:
        listener.close()
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in one_error_line(result)
    assert not (tmp_path / "run" / "ipi.log").exists()


@pytest.mark.slow  # ~19 s of i-PI runs; the runner's stale-socket check is a few lines of ipi/launcher code
def test_a_stale_socket_file_is_removed_and_the_run_goes_on(tmp_path, reaper):
    reaper(tmp_path)
    address = unique("stale")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(f"/tmp/ipi_{address}")
    stale.close()  # the file stays, nobody listens: what a killed i-PI leaves
    xml = nvt_variant(tmp_path, "nvt.xml", address, steps=2)
    result = so3k("run", str(xml), "--model", SO3KRATES_RANDOM, "--workdir", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"removed stale socket file /tmp/ipi_{address}" in result.stderr
    assert property_steps(tmp_path / "nvt.out") == [0, 1, 2]


def test_nan_positions_stop_the_run_in_one_line(tmp_path, reaper):
    reaper(tmp_path)
    xml = nvt_variant(tmp_path, "nan.xml", unique("nan"))
    lines = (tmp_path / "ala3.xyz").read_text().splitlines()
    fields = lines[5].split()
    lines[5] = f"{fields[0]} nan {fields[2]} {fields[3]}"
    (tmp_path / "ala3.xyz").write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    result = so3k("run", str(xml), "--model", SO3KRATES_RANDOM, "--workdir", str(tmp_path / "run"), "--quiet",
                  timeout=120)
    assert result.returncode != 0
    assert time.monotonic() - started < 60
    line = one_error_line(result)
    assert "nan" in line.lower() or "finite" in line.lower(), line
    assert pids_of(f"{tmp_path}/run/", True) == []


def test_a_driver_whose_structure_has_another_atom_count_stops_in_one_line(tmp_path, reaper):
    reaper(tmp_path)
    address = unique("count")
    xml = nvt_variant(tmp_path, "nvt.xml", address)
    ipi = subprocess.Popen([str(Path(sys.executable).parent / "i-pi"), str(xml)], cwd=tmp_path,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(f"/tmp/ipi_{address}"), 30, "the i-PI socket")
        smaller = tmp_path / "smaller.xyz"
        lines = (tmp_path / "ala3.xyz").read_text().splitlines()
        smaller.write_text("\n".join([str(int(lines[0]) - 2), lines[1]] + lines[2:-2]) + "\n")
        result = so3k("serve", SO3KRATES_RANDOM, "--unix", address, "--structure", str(smaller), timeout=90)
    finally:
        ipi.kill()
        ipi.wait()
        if os.path.exists(f"/tmp/ipi_{address}"):
            os.unlink(f"/tmp/ipi_{address}")
    assert result.returncode == 2
    line = one_error_line(result)
    assert "atom" in line and "40" in line and "42" in line


@pytest.mark.parametrize("greeting", [pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n", marks=pytest.mark.slow), None])
def test_serve_inet_to_something_that_is_not_ipi_fails_within_seconds(greeting):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    accepted = []

    def answer():
        connection, _ = listener.accept()
        accepted.append(connection)
        if greeting:
            connection.sendall(greeting)

    threading.Thread(target=answer, daemon=True).start()
    started = time.monotonic()
    try:
        result = so3k("serve", SO3KRATES_RANDOM, "--inet", f"127.0.0.1:{port}", "--structure",
                      str(INPUTS / "ala3.xyz"), "--connect-timeout", "3", timeout=60)
    finally:
        for connection in accepted:
            connection.close()
        listener.close()
    assert result.returncode == 2
    line = one_error_line(result)
    assert ("not i-PI's protocol" if greeting else "nothing there spoke i-PI's protocol") in line
    assert time.monotonic() - started < 40  # model loading included; the wait itself is 3 s
