"""Keep XLA's large scratch buffers in the heap on CPUs, so that a model call does not page-fault through
fresh memory every time.

XLA's CPU runtime allocates each call's scratch (tens of MB for a batch of Ac-Ala15-NHMe) with ``malloc``
and frees it when the call ends. glibc serves a request above its mmap threshold (dynamic, at most 32 MiB)
with a fresh ``mmap`` and returns it with ``munmap``, so the next call touches every page anew: one minor
page fault per 4 KiB. Measured on the project's 2-core VM (2026-12-04, 8 × 162 atoms, float32, quiet):

- student v10 (37.5 MiB of scratch per call, 4 calls): 38 700 faults and 82 ms per batch; with the
  threshold raised, 3 faults and 42.5 ms. The bundled v6 (30.4 MiB, under the cap) was not affected.
- SO3LR in calls of one structure (47.7 MiB): 99 000 faults, 253 ms; raised, 600 faults, 126 ms. In
  calls of two (94 MiB) the faults stay: XLA allocates from a worker thread, whose glibc arena grows
  in heaps of at most 64 MiB, so a larger block is mmapped whatever the threshold. That is why
  ``Potential`` sizes CPU calls to keep the scratch under ``SCRATCH_BYTES_PER_CALL``.

:func:`keep_large_buffers` raises the mmap threshold to 1 GiB and the trim threshold to 2 GiB with
``mallopt``: freed scratch stays in the process for the next call (the process keeps its peak memory
instead of returning it). It also sets the top pad to 64 MiB. A thread arena whose heap is partly in use
serves a block of 48 MiB from a second heap, and glibc deletes a heap as soon as it is wholly free unless
the top pad says to keep that much (``heap_trim`` compares with the pad, not the trim threshold). Without
the pad every call created and unmapped that heap again: the i-PI process of the SO3LR study (model
inside i-PI, 8 calls of 47.7 MiB per step) faulted ~11 000 pages per step, where the same batch called
from a plain script faulted ~30 times (2026-12-05, ``docs/performance.md``).

A block above 64 MiB is beyond what any thread arena's heap can hold: glibc maps it afresh for every call
whatever the thresholds. That is one call of SO3LR on a compact Ac-Ala15-NHMe helix (1900-2200 pairs within
4.5 Å: 62-75 MiB of scratch, and it cannot be split below one structure); in the i-PI process of the SO3LR
helix metadynamics XLA's two threads took 1.39 million faults each in 10 s, ~40 000 per step, and a step
cost 140 ms against a call of 64 ms in a script (2026-12-06, ``docs/performance.md``). Huge pages cut the
faults 512-fold: :func:`child_environment` starts the processes that run the model (i-PI with the model
inside, the drivers) with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, so glibc asks the kernel for
transparent huge pages on the memory it maps (glibc 2.35 or later, where the kernel's
``transparent_hugepage`` is ``madvise`` or ``always``; elsewhere it changes nothing). Measured: one
75 MiB call in a thread, 19 300 faults and 117-138 ms per call against 340-500 faults and 68-78 ms.
It is a start-up setting of glibc, so a process cannot give it to itself once running: the command line's
commands that run a model in their own process (``so3k serve``, ``eval``, ``minima``, ...) start themselves
again in place with it (:func:`restart_with_huge_pages`, same pid and arguments, before any work).

It is called at run time, never on import: by a ``Potential`` built for a CPU (so the i-PI PES, the ASE
calculator and library users get it too) and by the command line (for training, which builds no
``Potential``).

- ``SO3K_HOST_MEMORY=0`` (or off/false/no) leaves glibc's settings alone, in this process and in the
  ones it starts.
- A user who sets ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_`` or
  ``GLIBC_TUNABLES`` keeps them (nothing is changed).
- Not glibc (macOS, musl): nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform
import sys

from .compilation_cache import OFF

ENVIRONMENT = "SO3K_HOST_MEMORY"
USER_MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
# glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1 << 30
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes an int
TOP_PAD_BYTES = 64 << 20  # a thread arena's heap (64 MiB at most) is never deleted once wholly free

# What child_environment gives the processes it starts; keep_large_buffers then still raises the thresholds
HUGE_PAGE_TUNABLES = "glibc.malloc.hugetlb=1"
HUGE_PAGE_GLIBC = (2, 35)  # the first glibc that knows glibc.malloc.hugetlb
KERNEL_HUGE_PAGES = "/sys/kernel/mm/transparent_hugepage/enabled"
THREAD_HEAP_BYTES = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit: a larger block is mapped afresh every call
_applied: bool | None = None
_decided = False  # warn_if_beyond_thread_heap has looked (and warned if it should)


def _user_settings(environment) -> bool:
    """Whether the user set glibc's malloc variables or GLIBC_TUNABLES themselves (our own tunables, which
    child_environment passes on, do not count)."""
    return (any(name in environment for name in USER_MALLOC_VARIABLES)
            or environment.get("GLIBC_TUNABLES", HUGE_PAGE_TUNABLES) != HUGE_PAGE_TUNABLES)


def _switched_off(environment) -> bool:
    return environment.get(ENVIRONMENT, "").strip().lower() in OFF


def child_environment(environment) -> dict:
    """The environment for a process that will run the model (i-PI with the model inside, a driver): a copy
    of ``environment`` with GLIBC_TUNABLES = HUGE_PAGE_TUNABLES (transparent huge pages for what glibc maps),
    unless SO3K_HOST_MEMORY is off or the user set glibc's malloc variables (then it is a plain copy)."""
    environment = dict(environment)
    if not _switched_off(environment) and not _user_settings(environment):
        environment["GLIBC_TUNABLES"] = HUGE_PAGE_TUNABLES
    return environment


def huge_pages_available(kernel_setting: str = KERNEL_HUGE_PAGES) -> bool:
    """Whether HUGE_PAGE_TUNABLES can do anything here: glibc 2.35 or later and transparent huge pages not
    ``never`` in the kernel (the file ``kernel_setting``, e.g. ``always [madvise] never``)."""
    try:
        with open(kernel_setting) as handle:
            mode = handle.read()
    except OSError:
        return False
    name, version = platform.libc_ver()
    try:
        release = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return "[never]" not in mode and name == "glibc" and release >= HUGE_PAGE_GLIBC


def _could_gain_huge_pages(environment) -> bool:
    """Whether a process with ``environment`` lacks HUGE_PAGE_TUNABLES that would help it: none set yet (ours
    or the user's), not switched off, no malloc variables of the user's, and huge_pages_available()."""
    return ("GLIBC_TUNABLES" not in environment and not _switched_off(environment)
            and not _user_settings(environment) and huge_pages_available())


def restart_with_huge_pages() -> None:
    """Run this program again in place (``execve``: same pid, arguments and open files) with
    :func:`child_environment`'s huge pages, when they are not set yet and can help; otherwise return.

    Call it first thing in a program that will run the model in its own process: the restart costs one
    interpreter start (~0.1 s) and loses nothing only while nothing has been done. It returns without
    restarting when SO3K_HOST_MEMORY is off, when the user set glibc's malloc variables or GLIBC_TUNABLES,
    when the process already has HUGE_PAGE_TUNABLES, or when :func:`huge_pages_available` is False.
    """
    if not _could_gain_huge_pages(os.environ):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # sys.executable, not orig_argv[0]: a bare "python" would be looked up on PATH again, maybe outside the venv
    arguments = [sys.executable, *sys.orig_argv[1:]]
    try:
        os.execve(sys.executable, arguments, child_environment(os.environ))
    except OSError:
        return  # cannot start again (no executable file, say): go on without huge pages


def warn_if_beyond_thread_heap(scratch_bytes: float) -> None:
    """Say once (logger ``so3k``, a warning) that a call needs about ``scratch_bytes`` of scratch, more than a
    glibc thread heap holds, in a process started without huge pages that could have them: a library user's
    script or ASE calculator (the command line, i-PI and the drivers start with them). Such a call is faulted
    in page by page every time, 1.5-1.9 x slower (docs/performance.md, "A call above 64 MiB")."""
    global _decided
    if _decided or scratch_bytes <= THREAD_HEAP_BYTES:
        return
    # decided once: the environment is the process's own, and the hot path need not read /sys again
    _decided = True
    if not _could_gain_huge_pages(os.environ):
        return
    logging.getLogger("so3k").warning(
        "a model call here needs about %.0f MiB of scratch (an upper estimate), at or beyond the 64 MiB a glibc "
        "thread heap keeps, so it may be page-faulted in afresh every call (1.5-1.9x slower): start Python with "
        "GLIBC_TUNABLES=%s (docs/performance.md, 'A call above 64 MiB'; SO3K_HOST_MEMORY=0 silences this)",
        scratch_bytes / 2**20, HUGE_PAGE_TUNABLES)


def keep_large_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds and its top pad for this process (once); True when they are raised.

    Returns False, changing nothing, when SO3K_HOST_MEMORY is off, when the user set glibc's malloc
    variables themselves, or when the C library is not glibc.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if _switched_off(os.environ) or _user_settings(os.environ):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl has mallopt as a stub that ignores the request
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 where this glibc refuses the value
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
                    and mallopt(M_TOP_PAD, TOP_PAD_BYTES))
    return _applied
