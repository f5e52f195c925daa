"""Where the external programs of a run are: the ``i-pi`` executable and the PLUMED kernel.

One locator for each, used by the launcher (``so3k run``) and by sampling studies. Both raise
``UserError`` with the install command when the program is missing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..errors import UserError

IPI_INSTALL_HINT = "install it with `pip install ipi` (i-PI >= 3.3.1)"
PLUMED_INSTALL_HINT = ("install one with `pip install --no-deps hillclimber==0.1.8` (bundles PLUMED 2.11 and sets "
                       "PLUMED_KERNEL on import), or set PLUMED_KERNEL=/path/to/libplumedKernel.so")


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


def find_plumed_kernel() -> Path:
    """Path to libplumedKernel that i-PI's <ffplumed> will load (through ``import plumed``).

    Raises UserError naming PLUMED_KERNEL when none is usable: checked before i-PI starts, because
    i-PI itself only fails once the run is under way.
    """
    try:
        import plumed  # the hillclimber wheel sets PLUMED_KERNEL here if unset
    except ImportError as error:
        raise UserError(f"the PLUMED Python module is not importable ({error}); {PLUMED_INSTALL_HINT}") from None
    kernel = os.environ.get("PLUMED_KERNEL") or getattr(plumed, "BUNDLED_KERNEL_PATH", None)
    if not kernel or not Path(kernel).is_file():
        raise UserError(f"no PLUMED kernel found (PLUMED_KERNEL={kernel or 'unset'}); {PLUMED_INSTALL_HINT}")
    try:
        plumed.Plumed()
    except Exception as error:  # noqa: BLE001 - the binding raises plain exceptions
        raise UserError(f"PLUMED kernel {kernel} (PLUMED_KERNEL) cannot be loaded: {error}; "
                        f"{PLUMED_INSTALL_HINT}") from None
    return Path(kernel)
