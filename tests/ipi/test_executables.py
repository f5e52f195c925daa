"""Finding i-PI (so3k_driver/ipi/executables.py)."""

import os
import subprocess
import sys
from pathlib import Path


def test_i_pi_is_found_as_an_absolute_path_when_python_was_started_through_a_relative_path(tmp_path):
    """i-PI runs in the run's folder: a path relative to the user's folder (PATH=.venv/bin) breaks there."""
    relative_bin = os.path.relpath(Path(sys.executable).absolute().parent, tmp_path)
    code = ("import sys; from so3k_driver.ipi.executables import ipi_executable; "
            "print(sys.executable); print(ipi_executable())")
    environment = {**os.environ, "PATH": relative_bin + os.pathsep + os.environ.get("PATH", "")}
    found = subprocess.run(["python", "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True,
                           timeout=60)
    assert found.returncode == 0, found.stderr
    executable, ipi = found.stdout.split()
    assert not os.path.isabs(executable)  # the situation this test is about
    assert os.path.isabs(ipi) and Path(ipi).is_file()
