"""A persistent XLA compilation cache for the ``so3k`` commands, so that a run resumed in pieces, a
restarted driver or a repeated evaluation does not compile the same model for the same shapes again.

Measured on the project's 2-core machine (loaded): the first call of the SO3LR student on 8 ×
Ac-Ala15-NHMe (162 atoms) took 26.6–29.9 s with an empty cache and 4.0 s from the cache; every
driver of a replica-exchange study, every resume and every new pair-list bucket pays that first call.

The cache is JAX's own (``jax_compilation_cache_dir``); this module only chooses where it lives:

- ``JAX_COMPILATION_CACHE_DIR`` set: that folder, untouched (JAX reads it itself);
- ``SO3K_COMPILATION_CACHE`` = ``0``/``off``/``false``/``no``: no cache;
- ``SO3K_COMPILATION_CACHE`` = a path: that folder;
- otherwise ``$XDG_CACHE_HOME/so3k_driver/xla/<machine>`` (``~/.cache`` without XDG_CACHE_HOME), where
  ``<machine>`` is the processor architecture and a hash of the CPU's instruction-set flags: XLA
  compiles CPU code for the host's instruction set, and a home folder shared by cluster nodes of
  different generations must not hand one node's code to another.

The choice is made by :func:`use_persistent_cache`, which the command line calls at run time
(importing this package changes nothing). It sets the environment, so that the drivers and i-PI
processes a command starts use the same cache. Entries of compilations under a second are not stored
(JAX's default), and the folder is capped at ``MAX_SIZE_BYTES`` (JAX evicts the least recently used).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import sys
from pathlib import Path

ENVIRONMENT = "SO3K_COMPILATION_CACHE"
JAX_ENVIRONMENT = "JAX_COMPILATION_CACHE_DIR"
MAX_SIZE_BYTES = 4 * 1024**3
OFF = ("0", "off", "false", "no")


def machine_key(cpuinfo: str | None = None) -> str:
    """'<architecture>-<12 hex digits>' from the CPU flags of /proc/cpuinfo (Linux; the architecture
    alone elsewhere). ``cpuinfo``: the text to use instead of reading the file."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.split(":", 1)[0].strip() in ("flags", "Features")), [])
    digest = hashlib.sha256(" ".join(sorted(set(flags))).encode()).hexdigest()[:12]
    return f"{platform.machine() or 'unknown'}-{digest}"


def default_folder(environ=None) -> Path:
    environ = os.environ if environ is None else environ
    base = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "so3k_driver" / "xla" / machine_key()


def use_persistent_cache(environ=None) -> Path | None:
    """Choose the cache folder (module docstring), create it and put it in ``environ`` (default
    os.environ) for JAX and for the processes started from here. Returns the folder, or None when
    the cache is off or the folder cannot be created (then nothing is cached, nothing fails)."""
    environ = os.environ if environ is None else environ
    if environ.get(JAX_ENVIRONMENT):
        return Path(environ[JAX_ENVIRONMENT])
    choice = environ.get(ENVIRONMENT, "").strip()
    if choice.lower() in OFF:
        return None
    try:
        folder = Path(choice).expanduser() if choice else default_folder(environ)
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # RuntimeError: no home folder to be found (a bare batch job)
        return None
    if not os.access(folder, os.W_OK):
        return None
    environ[JAX_ENVIRONMENT] = str(folder)
    # JAX evicts under a size cap only with filelock (a dependency; without it JAX could read no entry)
    capped = importlib.util.find_spec("filelock") is not None
    if capped:
        environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(MAX_SIZE_BYTES))
    jax = sys.modules.get("jax")
    if jax is not None and environ is os.environ:  # imported already: the environment came too late for it
        jax.config.update("jax_compilation_cache_dir", str(folder))
        if capped:
            jax.config.update("jax_compilation_cache_max_size", int(environ["JAX_COMPILATION_CACHE_MAX_SIZE"]))
    return folder
