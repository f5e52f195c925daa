"""Locate the PLUMED kernel that i-PI's <ffplumed> will load (through ``import plumed``)."""

from __future__ import annotations

import os
from pathlib import Path

INSTALL_HINT = ("install one with `pip install --no-deps hillclimber==0.1.8` (bundles PLUMED 2.11 and sets "
                "PLUMED_KERNEL on import), or set PLUMED_KERNEL=/path/to/libplumedKernel.so")


def find_plumed_kernel() -> Path:
    """Path to libplumedKernel; raises so3k_driver.errors.UserError naming PLUMED_KERNEL when none is usable."""
    from ..errors import UserError

    try:
        import plumed  # the hillclimber wheel sets PLUMED_KERNEL here if unset
    except ImportError as error:
        raise UserError(f"the PLUMED Python module is not importable ({error}); {INSTALL_HINT}") from None
    kernel = os.environ.get("PLUMED_KERNEL") or getattr(plumed, "BUNDLED_KERNEL_PATH", None)
    if not kernel or not Path(kernel).is_file():
        raise UserError(f"no PLUMED kernel found (PLUMED_KERNEL={kernel or 'unset'}); {INSTALL_HINT}")
    try:
        plumed.Plumed()
    except Exception as error:  # noqa: BLE001 - the binding raises plain exceptions
        raise UserError(f"PLUMED kernel {kernel} (PLUMED_KERNEL) cannot be loaded: {error}; {INSTALL_HINT}") from None
    return Path(kernel)
