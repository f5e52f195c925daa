"""The command line: JSON output, and user errors as one line with exit status 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REFERENCE, SO3KRATES_RANDOM, periodic_test_system

pytestmark = pytest.mark.shared


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "so3k_driver.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_eval_json_with_stress(tmp_path):
    import ase.io
    from ase import Atoms

    numbers, positions, cell = periodic_test_system()
    periodic = tmp_path / "box.extxyz"
    ase.io.write(periodic, Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True))
    molecule = REFERENCE / "ala3.xyz"
    result = run_cli("eval", SO3KRATES_RANDOM, str(molecule), str(periodic), "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2
    assert {"energy", "forces"} <= set(records[0]) and "stress" not in records[0]
    assert np.asarray(records[1]["stress"]).shape == (3, 3)
    assert np.asarray(records[0]["forces"]).shape == (42, 3)


def test_cli_reports_bad_input_in_one_line(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\n\nC 0 0 0\nC 0 0 0.05\n")
    result = run_cli("eval", SO3KRATES_RANDOM, str(bad))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "apart" in result.stderr
    missing = run_cli("eval", "mlff:/nonexistent", str(bad))
    assert missing.returncode != 0 and "not a directory" in missing.stderr


def test_cli_user_errors_are_one_line_under_python_m():
    """`python -m so3k_driver.cli` runs cli.py as __main__: user errors must still be caught."""
    result = run_cli("run", "/nonexistent/input.xml", "--model", "ala3-xtb")
    assert result.returncode == 2
    assert result.stderr.strip() == "so3k run: error: i-PI input '/nonexistent/input.xml' not found"


def test_driver_options_become_serve_fields_and_bad_ones_are_one_line():
    from so3k_driver.cli.ipi_commands import driver_settings
    from so3k_driver.errors import UserError

    assert driver_settings(["--lr-cutoff=10", "--total-charge", "1"]) == {"lr_cutoff": 10.0, "total_charge": 1.0}
    assert driver_settings(["--lr-cutoff=0"]) == {"lr_cutoff": None}  # 0 = all pairs
    assert driver_settings([]) == {}
    with pytest.raises(UserError, match="--max-steps"):
        driver_settings(["--max-steps=3"])
    result = run_cli("run", "/nonexistent/input.xml", "--model", "ala3-xtb", "--driver-option=--bogus")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--bogus" in result.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`so3k info MODEL | head -1`: the pipe closes before so3k writes; no traceback, the shell's 141."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "so3k_driver.cli", "info", "default"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # no reader left
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
