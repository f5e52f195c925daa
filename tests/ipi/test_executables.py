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


# Finding the PLUMED kernel, and telling an unoptimised one.

def _bundled_kernel() -> Path:
    import plumed

    return Path(plumed.BUNDLED_KERNEL_PATH)


def _install_kernel(prefix: Path, target: Path) -> Path:
    """A loadable kernel where scripts/build_plumed.sh would put one (a link to a real kernel)."""
    from so3k_driver.ipi.executables import BUILT_KERNEL

    built = prefix / BUILT_KERNEL
    built.parent.mkdir(parents=True)
    built.symlink_to(target)
    return built


def test_a_kernel_built_into_the_environment_is_preferred_to_the_wheels_own(tmp_path, monkeypatch):
    from so3k_driver.ipi.executables import find_plumed_kernel

    monkeypatch.delenv("PLUMED_KERNEL", raising=False)
    assert find_plumed_kernel(prefix=str(tmp_path)) == _bundled_kernel()  # nothing built yet
    built = _install_kernel(tmp_path, _bundled_kernel())
    # `import plumed` has set PLUMED_KERNEL to the wheel's kernel: that is not the user's choice
    monkeypatch.setenv("PLUMED_KERNEL", str(_bundled_kernel()))
    assert find_plumed_kernel(prefix=str(tmp_path)) == built
    assert os.environ["PLUMED_KERNEL"] == str(_bundled_kernel())  # the caller's environment is left as it was


def test_the_users_plumed_kernel_wins_over_a_built_one(tmp_path, monkeypatch):
    from so3k_driver.ipi.executables import find_plumed_kernel

    _install_kernel(tmp_path / "env", _bundled_kernel())
    own = tmp_path / "own" / "libplumedKernel.so"
    own.parent.mkdir()
    own.symlink_to(_bundled_kernel())
    monkeypatch.setenv("PLUMED_KERNEL", str(own))
    assert find_plumed_kernel(prefix=str(tmp_path / "env")) == own


def _kernel_with_options(folder: Path, compile_line: str | None) -> Path:
    kernel = folder / "lib" / "libplumedKernel.so"
    config = kernel.parent / "plumed" / "src" / "config"
    config.mkdir(parents=True)
    kernel.write_bytes(b"")
    if compile_line is not None:
        (config / "compile_options.sh").write_text(f"compile='{compile_line}'\nsoext='so'\n")
    return kernel


def test_an_unoptimised_kernel_is_told_from_its_compile_options(tmp_path):
    from so3k_driver.ipi.executables import plumed_kernel_optimised

    flags = "g++ -c -I\"$PLUMED_INCLUDEDIR/$PLUMED_PROGRAM_NAME\"/ -DNDEBUG=1 -fPIC -std=c++17 -fopenmp"
    assert plumed_kernel_optimised(_kernel_with_options(tmp_path / "a", flags)) is False
    assert plumed_kernel_optimised(_kernel_with_options(tmp_path / "b", flags + " -O2")) is True
    assert plumed_kernel_optimised(_kernel_with_options(tmp_path / "c", "g++ -c -Ofast -fPIC")) is True
    assert plumed_kernel_optimised(_kernel_with_options(tmp_path / "d", None)) is None  # no options: unknown
    # the pinned wheel (hillclimber 0.1.8) builds PLUMED with CXXFLAGS=-Wno-error only, i.e. at -O0
    assert plumed_kernel_optimised(_bundled_kernel()) is False
