"""Where the external programs of a run are: the ``i-pi`` executable and the PLUMED kernel.

One locator for each, used by the launcher (``so3k run``) and by sampling studies. Both raise
``UserError`` with the install command when the program is missing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from ..errors import UserError

IPI_INSTALL_HINT = "install it with `pip install ipi` (i-PI >= 3.3.1)"
PLUMED_INSTALL_HINT = ("install one with `pip install --no-deps hillclimber==0.1.8` (bundles PLUMED 2.11 and sets "
                       "PLUMED_KERNEL on import), or set PLUMED_KERNEL=/path/to/libplumedKernel.so")
# Where scripts/build_plumed.sh installs an optimised kernel, relative to the environment's prefix.
BUILT_KERNEL = os.path.join("opt", "plumed", "lib", "libplumedKernel.so")


def ipi_executable() -> Path:
    """The ``i-pi`` script of this environment (beside the running Python), else the first on PATH."""
    # absolute: i-PI is started in the run's folder, and sys.executable is relative when PATH is
    local = Path(sys.executable).absolute().parent / "i-pi"
    if local.is_file():
        return local
    found = shutil.which("i-pi")
    if found:
        return Path(found).absolute()
    raise UserError(f"the i-pi executable was found neither beside {sys.executable} nor on PATH; {IPI_INSTALL_HINT}")


def find_plumed_kernel(prefix: str | None = None) -> Path:
    """Path to libplumedKernel that i-PI's <ffplumed> will load (through ``import plumed``).

    In order: the user's ``PLUMED_KERNEL``; the optimised kernel ``scripts/build_plumed.sh`` installed
    under ``prefix`` (default ``sys.prefix``, this environment); the kernel of the hillclimber wheel.
    ``import plumed`` of that wheel sets ``PLUMED_KERNEL`` to its own kernel when unset, so a variable
    naming that kernel does not count as the user's choice. Raises UserError naming PLUMED_KERNEL when
    none is usable: checked before i-PI starts, because i-PI itself only fails once the run is under way.
    """
    try:
        import plumed  # the hillclimber wheel sets PLUMED_KERNEL here if unset
    except ImportError as error:
        raise UserError(f"the PLUMED Python module is not importable ({error}); {PLUMED_INSTALL_HINT}") from None
    bundled = getattr(plumed, "BUNDLED_KERNEL_PATH", None)
    built = Path(prefix or sys.prefix) / BUILT_KERNEL
    kernel = os.environ.get("PLUMED_KERNEL")
    if (not kernel or (bundled and Path(kernel) == Path(bundled))) and built.is_file():
        kernel = str(built)
    kernel = kernel or bundled
    if not kernel or not Path(kernel).is_file():
        raise UserError(f"no PLUMED kernel found (PLUMED_KERNEL={kernel or 'unset'}); {PLUMED_INSTALL_HINT}")
    try:
        plumed.Plumed(kernel=str(kernel))
    except Exception as error:  # noqa: BLE001 - the binding raises plain exceptions
        raise UserError(f"PLUMED kernel {kernel} (PLUMED_KERNEL) cannot be loaded: {error}; "
                        f"{PLUMED_INSTALL_HINT}") from None
    return Path(kernel)


def plumed_kernel_optimised(kernel: Path) -> bool | None:
    """Whether ``kernel`` was compiled with optimisation (``-O1`` or more), read from the compile options
    PLUMED installs beside it (``plumed/src/config/compile_options.sh``); None when they are not there.

    The hillclimber 0.1.8 wheel's kernel is not: so3k's metadynamics CVs cost 3-8x more per step there.
    """
    options = Path(kernel).parent / "plumed" / "src" / "config" / "compile_options.sh"
    try:
        text = options.read_text()
    except OSError:
        return None
    match = re.search(r"^compile='(.*)'$", text, flags=re.M)
    if match is None:
        return None
    flags = shlex.split(match.group(1))
    return any(re.fullmatch(r"-O(fast|[1-3s])", flag) for flag in flags)
