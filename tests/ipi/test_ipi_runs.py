"""End-to-end runs with real i-PI processes and the random-weights SO3krates model (few steps)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SO3KRATES_RANDOM
from so3k_driver.ipi import ipi_xml

pytest.importorskip("ipi", reason="i-PI is not installed (pip install ipi)")
pytestmark = pytest.mark.shared
INPUTS = REPO / "ipi_inputs"
SO3K = [sys.executable, "-m", "so3k_driver.cli"]


def unique(name):
    return f"so3k-test-{os.getpid()}-{name}"


def so3k_run(xml, workdir, *options, timeout=120, model=SO3KRATES_RANDOM):
    command = SO3K + ["run", str(xml), "--model", model, "--workdir", str(workdir), "--quiet", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def properties(path):
    return np.loadtxt(path, ndmin=2)


# nvt and remd are behind the slow marker (~18 s each): nvt.xml runs in test_the_runner_is_a_library_call,
# several connections in pimd, replica exchange in the study tests (tests/sampling).
@pytest.mark.parametrize("name,options", [
    pytest.param("nvt", [], marks=pytest.mark.slow), ("pimd", ["--connections", "8"]), ("npt", []),
    pytest.param("remd", ["--connections", "4"], marks=pytest.mark.slow),
])
def test_every_input_runs(tmp_path, name, options):
    # pimd: 8 connections, more than i-PI's listen backlog (at most 5), each greeted before the next opens
    # 10 steps: the shipped inputs write properties every 10 steps (docs/ipi.md, "Where a step's time goes")
    result = so3k_run(INPUTS / f"{name}.xml", tmp_path, "--steps", "10", "--address", unique(name), *options)
    assert result.returncode == 0, result.stderr
    outputs = sorted(tmp_path.glob(f"*{name}.out"))
    assert outputs and all(properties(p)[-1, 0] == 10 for p in outputs)
    if name == "remd":  # exchanges are attempted every 2 steps and logged
        assert len((tmp_path / "remd.remd_idx").read_text().split("\n")) >= 2
    # The driver counted its model calls against the structures a step brings (read from the input).
    calls = json.loads((tmp_path / "so3k_driver_calls.json").read_text())
    assert calls["per_step"] == {"nvt": 1, "pimd": 8, "npt": 1, "remd": 4}[name]
    assert calls["slots"] >= calls["distinct"] >= 5 and calls["calls"] >= 5 and calls["calls_per_step"] >= 1


def write_variant(tmp_path, source, replacements, name):
    text = (INPUTS / source).read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    shutil.copy(INPUTS / "ala3.xyz", tmp_path / "ala3.xyz")
    return path


FORCE_OUTPUTS = ("<checkpoint stride='1000'/>",
                 "<checkpoint stride='1000'/>\n<trajectory filename='frc' stride='1' format='xyz'> forces{atomic_unit} </trajectory>"
                 "\n<trajectory filename='xat' stride='1' format='xyz'> positions{atomic_unit} </trajectory>")


EVERY_STEP = ("<properties stride='10' ", "<properties stride='1' ")  # the shipped inputs write every 10 steps


def read_frames(path, natoms):
    lines = Path(path).read_text().splitlines()
    frames = []
    for start in range(0, len(lines), natoms + 2):
        block = lines[start + 2:start + 2 + natoms]
        frames.append(np.array([[float(x) for x in line.split()[1:4]] for line in block]))
    return np.array(frames)


def test_inet_forces_equal_potential_forces_and_nve_conserves_energy(tmp_path, so3krates32):
    """i-PI's forces (Ha/bohr) are the potential's (eV/Å) converted; NVE conserves energy."""
    from so3k_driver.ipi.structures import read_numbers
    from so3k_driver.units import BOHR_IN_ANGSTROM, EV_PER_ANGSTROM_IN_HARTREE_PER_BOHR

    port = 20000 + os.getpid() % 20000
    xml = write_variant(tmp_path, "nvt.xml", [
        ("mode='unix'", "mode='inet'"), ("so3k-nvt", "127.0.0.1"),
        ("<latency>", f"<port> {port} </port><latency>"),
        ("<dynamics mode='nvt'>", "<dynamics mode='nve'>"), EVERY_STEP,
        ("<timestep units='femtosecond'> 0.5 </timestep>", "<timestep units='femtosecond'> 0.25 </timestep>"),
        FORCE_OUTPUTS], "nve_inet.xml")
    result = so3k_run(xml, tmp_path, "--steps", "10")
    assert result.returncode == 0, result.stderr
    numbers = read_numbers(str(INPUTS / "ala3.xyz"))
    positions = read_frames(tmp_path / "nvt.xat_0.xyz", len(numbers))
    forces = read_frames(tmp_path / "nvt.frc_0.xyz", len(numbers))
    for frame in (0, len(positions) - 1):
        expected = so3krates32.evaluate(numbers, positions[frame] * BOHR_IN_ANGSTROM).forces[0]
        np.testing.assert_allclose(forces[frame], expected * EV_PER_ANGSTROM_IN_HARTREE_PER_BOHR, atol=2e-6)
    conserved = properties(tmp_path / "nvt.out")[:, 2]  # eV
    assert np.ptp(conserved) < 1e-3


@pytest.mark.slow
def test_batched_shm_pimd_gives_the_unbatched_forces(tmp_path):
    runs = {}
    for label, batch, mode in [("batched", 4, "shm"), ("unbatched", 1, "unix")]:
        workdir = tmp_path / label
        workdir.mkdir()
        xml = write_variant(workdir, "pimd.xml", [
            ("<batch_size> 8 </batch_size>", f"<batch_size> {batch} </batch_size>"),
            ("<initialize nbeads='8'>", "<initialize nbeads='4'>"), ("mode='unix'", f"mode='{mode}'"),
            ("x_centroid{angstrom}", "forces{atomic_unit}")], "pimd4.xml")
        result = so3k_run(xml, workdir, "--steps", "2", "--address", unique(label))
        assert result.returncode == 0, result.stderr
        runs[label] = properties(workdir / "pimd.out")
    np.testing.assert_allclose(runs["batched"], runs["unbatched"], rtol=1e-6, atol=1e-8)


def start_ipi(workdir, xml):
    return subprocess.Popen([str(Path(sys.executable).parent / "i-pi"), str(xml)], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def steps_done(path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(properties(path)[-1, 0])
    except (OSError, ValueError, IndexError):
        return -1


# A killed driver (restarted, no step lost) and a killed i-PI (resumed) are in test_faults.py.
def test_killing_ipi_stops_the_driver_within_seconds(tmp_path):
    address = unique("kill-ipi")
    xml = write_variant(tmp_path, "nvt.xml", [("so3k-nvt", address), ("> 100 <", "> 100000 <"), EVERY_STEP], "long.xml")
    ipi = start_ipi(tmp_path, xml)
    driver = None
    try:
        wait_for(lambda: os.path.exists(f"/tmp/ipi_{address}"), 30, "the i-PI socket")
        driver = subprocess.Popen(SO3K + ["serve", SO3KRATES_RANDOM, "--unix", address, "--structure", str(xml)],
                                  stderr=subprocess.PIPE, text=True)
        wait_for(lambda: steps_done(tmp_path / "nvt.out") >= 3, 60, "MD steps")
        os.killpg(ipi.pid, signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = driver.communicate(timeout=10)
        assert time.monotonic() - killed < 10
        assert driver.returncode != 0 and "i-PI" in stderr
    finally:
        for process in (ipi, driver):
            if process is not None and process.poll() is None:
                process.kill()
        if os.path.exists(f"/tmp/ipi_{address}"):
            os.unlink(f"/tmp/ipi_{address}")


@pytest.mark.slow
def test_remd_metad_input_runs_with_plumed(tmp_path):
    """ipi_inputs/remd_metad.xml through so3k run from another folder: PLUMED inputs are found,
    every temperature deposits its own hills and exchanges are attempted."""
    pytest.importorskip("plumed")
    # Exchanges every 2 steps instead of 50: remd_idx lists only accepted swaps, and 2 attempts in
    # 100 steps were sometimes all rejected. The variant sits in its own folder with copies of the
    # files it names, and i-PI runs in another one.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ["ala15_ext.xyz"] + [f"plumed_remd_T{k}.dat" for k in range(4)]:
        shutil.copy(INPUTS / name, inputs / name)
    text = (INPUTS / "remd_metad.xml").read_text()
    assert "<stride> 50 </stride> <krescale>" in text
    (inputs / "remd_metad.xml").write_text(text.replace("<stride> 50 </stride> <krescale>", "<stride> 2 </stride> <krescale>"))
    tmp_path = tmp_path / "run"
    tmp_path.mkdir()
    # The bundled (trained) model: 100 steps of 162 atoms with random weights can crush two atoms together.
    result = so3k_run(inputs / "remd_metad.xml", tmp_path, "--steps", "100", "--address", unique("remdmtd"),
                      timeout=300, model="ala3-xtb")
    assert result.returncode == 0, result.stderr
    outputs = sorted(tmp_path.glob("*remd_metad.out"))
    assert len(outputs) == 4 and all(properties(p)[-1, 0] == 100 for p in outputs)
    for k in range(4):
        hills = [line for line in (tmp_path / f"HILLS.T{k}").read_text().splitlines() if not line.startswith("#")]
        assert len(hills) == 1  # PACE=100
    assert (tmp_path / "remd_metad.remd_idx").read_text().strip()


def test_the_runner_is_a_library_call(tmp_path):
    """run_simulation(RunOptions) from Python: no argparse, a result object, no output when quiet."""
    from so3k_driver.ipi.runner import RunOptions, run_simulation

    options = RunOptions(input=str(INPUTS / "nvt.xml"), model=SO3KRATES_RANDOM, workdir=str(tmp_path), steps=10,
                         address=unique("library"), quiet=True)
    result = run_simulation(options)
    assert (result.interrupted, result.last_step) == (False, 10)
    assert properties(tmp_path / "nvt.out")[-1, 0] == 10
    assert ipi_xml.step(tmp_path / "RESTART") == 10
    # the driver timed the steady state of its calls (the first 10 are not timed: 11 calls, 1 timed)
    timing = result.calls["so3k"]
    assert timing["timed_calls"] == 1 and timing["ms_per_step"] > timing["model_ms_per_call"] > 0


@pytest.mark.parametrize("field, value, named", [
    ("drivers", 0, "drivers"), ("steps", -3, "steps"), ("timeout_s", 0, "timeout_s"), ("dtype", "float16", "float16"),
    ("input", "missing.xml", "missing.xml"), ("max_bond_stretch", -1.0, "max_bond_stretch")])
def test_run_options_name_the_bad_value(field, value, named):
    from so3k_driver.errors import UserError
    from so3k_driver.ipi.runner import RunOptions

    arguments = {"input": str(INPUTS / "nvt.xml"), "model": "ala3-xtb", field: value}
    with pytest.raises(UserError, match=named):
        RunOptions(**arguments)


def test_run_options_make_model_paths_absolute_because_drivers_start_in_the_workdir(tmp_path, monkeypatch):
    """`so3k run INPUT --model student.so3k --workdir elsewhere` failed: the driver looked for the file in
    elsewhere/."""
    from so3k_driver.ipi.runner import RunOptions

    monkeypatch.chdir(tmp_path)
    options = RunOptions(input=str(INPUTS / "nvt.xml"), model="student.so3k", models={"slow": "so3lr:params"})
    assert options.model == str(tmp_path / "student.so3k")
    assert options.model_for("slow") == f"so3lr:{tmp_path / 'params'}"
    assert RunOptions(input=str(INPUTS / "nvt.xml"), model="ala3-xtb").model == "ala3-xtb"


def test_a_missing_plumed_kernel_stops_so3k_run_before_ipi_starts(tmp_path):
    """One line, exit 2, and no i-PI started (no log written)."""
    environment = dict(os.environ, PLUMED_KERNEL=str(tmp_path / "libplumedKernel.so"))
    result = subprocess.run(SO3K + ["run", str(INPUTS / "remd_metad.xml"), "--model", "ala3-xtb", "--workdir",
                                    str(tmp_path / "run")], capture_output=True, text=True, timeout=60, env=environment)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "PLUMED_KERNEL" in errors[0]
    assert not (tmp_path / "run" / "ipi.log").exists()


def test_an_unoptimised_plumed_kernel_is_named_before_the_run_and_an_optimised_one_is_not(tmp_path, monkeypatch):
    import plumed
    from so3k_driver.ipi.run_setup import RunOptions, _prepare_piece, prepare_workdir

    monkeypatch.setattr(sys, "prefix", str(tmp_path))  # no kernel built into this test's "environment"
    monkeypatch.delenv("PLUMED_KERNEL", raising=False)

    def notes(name):
        options = RunOptions(input=str(INPUTS / "remd_metad.xml"), model="ala3-xtb", workdir=str(tmp_path / name))
        return _prepare_piece(options, options.input, prepare_workdir(options.workdir), resumed=False).notes

    unoptimised = [note for note in notes("wheel") if "PLUMED" in note]
    assert len(unoptimised) == 1 and "without optimisation" in unoptimised[0]
    assert str(plumed.BUNDLED_KERNEL_PATH) in unoptimised[0] and "PLUMED_KERNEL" in unoptimised[0]
    # the same kernel, installed with compile options that say -O2
    kernel = tmp_path / "optimised" / "libplumedKernel.so"
    (kernel.parent / "plumed" / "src" / "config").mkdir(parents=True)
    (kernel.parent / "plumed" / "src" / "config" / "compile_options.sh").write_text("compile='g++ -c -O2 -fPIC'\n")
    kernel.symlink_to(plumed.BUNDLED_KERNEL_PATH)
    monkeypatch.setenv("PLUMED_KERNEL", str(kernel))
    assert not [note for note in notes("optimised") if "PLUMED" in note]


def test_so3k_serve_is_a_library_call_with_checked_options():
    from so3k_driver.errors import UserError
    from so3k_driver.ipi.serving import ServeOptions

    with pytest.raises(UserError, match="HOST:PORT"):
        ServeOptions(model="ala3-xtb", structure=str(INPUTS / "ala3.xyz"), inet="localhost")
    with pytest.raises(UserError, match="exactly one"):
        ServeOptions(model="ala3-xtb", structure=str(INPUTS / "ala3.xyz"))
    with pytest.raises(UserError, match="shm"):
        ServeOptions(model="ala3-xtb", structure=str(INPUTS / "ala3.xyz"), inet="localhost:1234", shm=True)


@pytest.mark.slow
def test_the_direct_backend_runs_the_model_inside_ipi_with_the_socket_paths_numbers(tmp_path):
    """so3k run --backend direct: the <ffsocket> becomes an <ffdirect> (no driver process); same model,
    seed and input give the socket run's properties, and the in-process PES counts its calls."""
    runs = {}
    for backend in ("socket", "direct"):
        workdir = tmp_path / backend
        result = so3k_run(INPUTS / "nvt.xml", workdir, "--steps", "10", "--address", unique(backend), "--backend", backend)
        assert result.returncode == 0, result.stderr
        runs[backend] = properties(workdir / "nvt.out")
    assert not list((tmp_path / "direct").glob("so3k_driver_*.log"))
    assert "<ffdirect" in (tmp_path / "direct" / "nvt.so3k.xml").read_text()
    calls = json.loads((tmp_path / "direct" / "so3k_driver_calls.json").read_text())
    assert calls["calls_per_step"] == 1.0 and calls["timed_calls"] == 1
    assert list(runs["direct"][:, 0]) == [0, 10]
    np.testing.assert_allclose(runs["direct"], runs["socket"], rtol=1e-5, atol=1e-6)


def test_the_force_guard_inside_ipi_fails_the_run_in_one_line(tmp_path):
    """Direct backend: the model error stops i-PI (a soft exit with status 0) and so3k run fails with
    the model's one line, as when a driver stops, not 'done'."""
    result = so3k_run(INPUTS / "nvt.xml", tmp_path, "--steps", "10", "--backend", "direct", "--max-force", "0.001")
    assert result.returncode == 1, result.stderr
    line = [text for text in result.stderr.splitlines() if "error" in text][-1]
    assert "the model inside i-PI stopped" in line and "above the limit" in line and "done" not in result.stderr


@pytest.mark.slow
def test_the_bond_guard_stops_a_socket_run_in_one_line_naming_the_bond(tmp_path):
    """--max-bond-stretch reaches the driver process. 1.0 × the sum of covalent radii is shorter than
    Ac-Ala3-NHMe's own C–H bonds (1.09 Å > 1.07 Å), so the first structure trips it as a broken bond would."""
    result = so3k_run(INPUTS / "nvt.xml", tmp_path, "--steps", "10", "--address", unique("bonds"),
                      "--max-bond-stretch", "1.0")
    assert result.returncode == 1, result.stderr
    [line] = [text for text in result.stderr.splitlines() if "error" in text]
    assert re.search(r"driver.* stopped: bond [A-Z][a-z]?\d+–[A-Z][a-z]?\d+ \(1-based\) of structure 1 in this request is "
                     r"\d\.\d\d Å long, above the limit of \d\.\d\d Å \(1 × the sum of covalent radii", line), line
    assert "--max-bond-stretch 0 disables this check" in line and "done" not in result.stderr


def test_so3k_run_takes_a_structure_file_without_ipis_cell_comment(tmp_path):
    """--structure with a plain xyz (no CELL comment: i-PI alone fails with "could not initialize the cell")."""
    from so3k_driver.sampling.plumed_inputs import bundled_structure

    plain = bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    result = so3k_run(INPUTS / "nvt.xml", tmp_path / "run", "--structure", plain, "--steps", "10")
    assert result.returncode == 0, result.stderr[-2000:]
    import ase.io
    first = ase.io.read(tmp_path / "run" / "nvt.pos_0.xyz", index=0)
    np.testing.assert_allclose(first.positions, ase.io.read(plain).positions, atol=1e-3)  # i-PI writes 6 digits


def test_a_moved_direct_run_resumes_from_its_restart_in_the_new_folder(tmp_path):
    """The RESTART of a run whose model ran inside i-PI names its PES configuration, which names the old
    folder's files: moved, the run continues in its new folder (before: FileNotFoundError inside i-PI)."""
    first = so3k_run(INPUTS / "nvt.xml", tmp_path / "old", "--backend", "direct", "--steps", "20")
    assert first.returncode == 0, first.stderr[-2000:]
    shutil.move(tmp_path / "old", tmp_path / "new")
    resumed = so3k_run(tmp_path / "new" / "RESTART", tmp_path / "new", "--steps", "40")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = properties(tmp_path / "new" / "nvt.out")[:, 0]
    assert steps[-1] == 40 and not (tmp_path / "old").exists()
    config = json.loads((tmp_path / "new" / "so3k_pes_so3k.json").read_text())
    assert config["template"].startswith(str(tmp_path / "new")) and config["stats_file"].startswith(str(tmp_path / "new"))
    assert json.loads((tmp_path / "new" / "so3k_driver_calls.json").read_text())["steps"] > 0


def test_a_direct_restart_without_its_pes_configuration_is_one_line(tmp_path):
    first = so3k_run(INPUTS / "nvt.xml", tmp_path / "run", "--backend", "direct", "--steps", "10")
    assert first.returncode == 0, first.stderr[-2000:]
    (tmp_path / "run" / "so3k_pes_so3k.json").unlink()
    resumed = so3k_run(tmp_path / "run" / "RESTART", tmp_path / "run", "--steps", "20")
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr
    assert "cannot be read" in resumed.stderr and "so3k_pes_so3k.json" in resumed.stderr
