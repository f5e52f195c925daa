"""XLA compile options for the jitted model on CPUs, passed per function (no global state).

Since jaxlib 0.10, XLA on CPUs hands elementwise and reduction fusions to YNNPACK. For our graphs
(a few thousand pairs × tens of features, hundreds of small fusions) XLA's own loop emitter is faster:
0.76–0.96 × the time per call, same numbers (`bench/bench_xla_options.py`; figures in
`docs/performance.md`).

The options go to ``jax.jit(..., compiler_options=...)`` rather than into ``XLA_FLAGS``: an XLA that
does not know a flag in ``XLA_FLAGS`` aborts the process, while an unknown compile option is a Python
error that :func:`cpu_compiler_options` catches once (by compiling a one-line function) and then
leaves the option out. So a jaxlib that renames or drops the option still runs, at its own defaults.

- ``SO3K_XLA_CPU_OPTIONS=0`` (or off/false/no) leaves XLA's defaults alone.
- A user who names an option in ``XLA_FLAGS`` keeps their value: we do not pass it.
"""

from __future__ import annotations

import functools
import os

import jax
import numpy as np

from .compilation_cache import OFF  # the words that switch an SO3K_* setting off

ENVIRONMENT = "SO3K_XLA_CPU_OPTIONS"
# The empty list switches YNNPACK fusions off (the flag takes a comma-separated list of fusion kinds).
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.lru_cache(maxsize=None)
def cpu_compiler_options() -> dict[str, str]:
    """The options of ``CPU_OPTIONS`` this jaxlib accepts, minus any the user set in ``XLA_FLAGS``.

    Empty when ``SO3K_XLA_CPU_OPTIONS`` is off. The first call compiles a tiny function per option to
    find out whether XLA knows it (a few ms; cached for the process).
    """
    if os.environ.get(ENVIRONMENT, "").strip().lower() in OFF:
        return {}
    user_flags = os.environ.get("XLA_FLAGS", "")
    accepted = {}
    for name, value in CPU_OPTIONS.items():
        if name in user_flags:
            continue
        try:
            probe = jax.jit(lambda x: x + 1, compiler_options={name: value})
            probe(jax.device_put(np.float32(0.0), jax.devices("cpu")[0])).block_until_ready()
        except Exception:  # an older jax (no compiler_options) or an XLA that does not know the option
            continue
        accepted[name] = value
    return accepted


def jit(function, platform: str | None = None, **jit_options):
    """``jax.jit(function, **jit_options)``, with the CPU options when ``platform`` is 'cpu'.

    platform: the platform the function will run on (None: JAX's default device's platform).
    """
    platform = platform or jax.devices()[0].platform
    options = cpu_compiler_options() if platform == "cpu" else {}
    if options:
        jit_options = {**jit_options, "compiler_options": options}
    return jax.jit(function, **jit_options)
