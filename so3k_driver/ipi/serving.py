"""Serve a model to a running i-PI: load the potential, read the elements, connect, answer requests.

``serve_model(ServeOptions(...))`` is ``so3k serve`` as a library call (the benchmark and any Python
caller use it too). Everything on the wire is in atomic units; the potential works in Å and eV.

``python -m so3k_driver.ipi.serving OPTIONS.json`` is the driver process that ``so3k run`` starts
(no argument parsing: the JSON holds the ServeOptions fields). Its exit status tells the runner
whether starting it again can help: 0 i-PI sent EXIT, 2 an error that would happen again (bad
model, unknown element, atom-count mismatch, NaN positions, force or bond guard), 3 i-PI went away;
anything else (a signal, an out-of-memory kill) is a crash worth a restart.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys

from .compute import DEFAULT_MAX_BOND_STRETCH, DEFAULT_MAX_FORCE, DRIVER_LOG_PREFIX, driver_error_message
from .transport import CONNECT_TIMEOUT_S, DEFAULT_PREFIX
from ..errors import Disconnected, InputError, ModelBreakdown, So3kError, StructureMismatch, UserError

log = logging.getLogger("so3k.ipi")

EXIT_FINISHED = 0
EXIT_WOULD_RECUR = 2  # a So3kError: the same input fails the same way again
EXIT_DISCONNECTED = 3

GPU_MEMORY_DEFAULTS = {
    # Several driver processes may share one GPU: don't let the first grab 75 % of its memory.
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
}


def check_model_options(dtype, max_force, max_bond_stretch) -> None:
    """UserError naming the first bad value among the options every driver takes: dtype (None, float32 or
    float64), max_force (eV/Å, 0 = no check) and max_bond_stretch (× sum of covalent radii, 0 = no check)."""
    if dtype not in (None, "float32", "float64"):
        raise UserError(f"dtype must be float32 or float64, got {dtype!r}")
    if max_force < 0:
        raise UserError(f"max_force must be >= 0 eV/Å (0 = no check), got {max_force}")
    if not max_bond_stretch >= 0:
        raise UserError(f"max_bond_stretch must be >= 0 × sum of covalent radii (0 = no check), got {max_bond_stretch}")


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """model: FILE.so3k, mlff:DIR, so3lr:DIR or 'default'. structure: where the elements come from
    (a structure file, or the i-PI XML input / RESTART), since i-PI sends positions only.
    unix (socket address; the file is prefix + address) or inet ("HOST:PORT"); shm: i-PI's
    shared-memory mode (unix only). connections: sockets opened by this process (requests that
    arrive together are evaluated in one batch). pbc: use i-PI's cell and return the virial.
    lr_cutoff Å (None = all pairs), dispersion_damping Å, total_charge e: SO3LR options.
    max_force eV/Å: stop when a force exceeds it (0 = no check). max_bond_stretch (× sum of covalent
    radii): stop when a bond of the first structure i-PI sends grows longer (0 = no check; the
    structure file gives the elements only). connect_timeout_s: seconds of retries.
    structures_per_step: structures i-PI asks this process for per MD step (replicas × beads; None =
    unknown): the driver then counts model calls per step and waits briefly for the rest of a step
    on idle connections (server.CallCounter). stats_file: where the call counts go as JSON at the end.
    """

    model: str
    structure: str
    unix: str | None = None
    inet: str | None = None
    prefix: str = DEFAULT_PREFIX
    shm: bool = False
    connections: int = 1
    pbc: bool = False
    dtype: str | None = None
    device: str | None = None
    lr_cutoff: float | None = 12.0
    dispersion_damping: float = 2.0
    total_charge: float = 0.0
    unpaired_electrons: float = 0.0
    max_force: float = DEFAULT_MAX_FORCE
    max_bond_stretch: float = DEFAULT_MAX_BOND_STRETCH
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    structures_per_step: int | None = None
    stats_file: str | None = None

    def __post_init__(self):
        if (self.unix is None) == (self.inet is None):
            raise UserError(f"give exactly one of a unix address and an inet HOST:PORT "
                            f"(got unix={self.unix!r}, inet={self.inet!r})")
        if self.shm and self.inet is not None:
            raise UserError(f"shared memory (shm) needs a unix socket address, not inet {self.inet!r}")
        if self.inet is not None:
            self.inet_address()  # checks the form
        if self.connections < 1:
            raise UserError(f"connections must be >= 1, got {self.connections}")
        check_model_options(self.dtype, self.max_force, self.max_bond_stretch)
        if not self.connect_timeout_s > 0:
            raise UserError(f"connect_timeout_s must be > 0 s, got {self.connect_timeout_s}")
        if self.structures_per_step is not None and self.structures_per_step < 1:
            raise UserError(f"structures_per_step must be >= 1 or None, got {self.structures_per_step}")

    def inet_address(self) -> tuple[str, int] | None:
        if self.inet is None:
            return None
        host, _, port = self.inet.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"inet address must be HOST:PORT, got {self.inet!r}")
        return host, int(port)


@dataclasses.dataclass(frozen=True)
class ServeResult:
    requests: int      # force evaluations answered (one per structure and step)
    compilations: int  # model traces/compilations (one per shape bucket)
    calls: dict = dataclasses.field(default_factory=dict)  # server.CallCounter.summary()


def serve_model(options: ServeOptions) -> ServeResult:
    """Serve until i-PI sends EXIT. Raises Disconnected when i-PI goes away without EXIT,
    StructureMismatch / ModelBreakdown / InputError for a structure the model cannot or must not
    evaluate (the connection is closed first), UserError for unusable options or files."""
    from .compute import make_compute
    from .server import CallCounter, ClientSession, serve
    from .structures import read_numbers
    from .transport import connect
    from ..evaluation.potential import Potential

    try:
        numbers = read_numbers(options.structure)
    except (ValueError, FileNotFoundError) as error:
        raise UserError(str(error)) from None
    potential = Potential.load(options.model, dtype=options.dtype, device=options.device,
                               lr_cutoff=options.lr_cutoff, dispersion_damping=options.dispersion_damping)
    compute = make_compute(potential, numbers, periodic=options.pbc, total_charge=options.total_charge,
                           unpaired_electrons=options.unpaired_electrons, max_force=options.max_force,
                           max_bond_stretch=options.max_bond_stretch)
    sessions = []
    try:
        for index in range(options.connections):
            connection = connect(unix=options.unix, inet=options.inet_address(), prefix=options.prefix,
                                 timeout_s=options.connect_timeout_s, verify_peer=index == 0)
            sessions.append(ClientSession(connection, options.shm))
            sessions[-1].answer_greeting()
    except ConnectionError as error:
        for session in sessions:
            session.close()
        raise UserError(str(error)) from None
    counter = CallCounter(per_step=options.structures_per_step, compiles=lambda: potential.compile_count)
    try:
        answered = serve(sessions, compute, counter=counter)
    except (StructureMismatch, ModelBreakdown) as error:
        raise type(error)(f"{error}; closed the connection") from None
    except InputError as error:
        raise InputError(f"bad structure from i-PI: {error}; closed the connection") from None
    finally:
        _write_stats(counter, options.stats_file)
    per_step = f", {counter.calls_per_step:.2f} calls per step" if counter.calls_per_step else ""
    timing = counter.timing()
    if timing["ms_per_call"] is not None:
        # where a step's time went, as this driver saw it (docs/ipi.md, "Where a step's time goes")
        per_step += (f"; steady state {timing['ms_per_call']:.2f} ms per call: model {timing['model_ms_per_call']:.2f}, "
                     f"waiting for i-PI {timing['idle_ms_per_call']:.2f}, driver {timing['own_ms_per_call']:.2f} ms")
        if counter.compiling_calls:
            per_step += (f" ({counter.compiling_calls} later calls compiled a new shape, {counter.compiling_s:.1f} s, "
                         "not counted)")
    log.info("done: %d requests, %d compilations, %d model calls for %d structures%s", answered,
             potential.compile_count, counter.calls, counter.distinct, per_step)
    return ServeResult(answered, potential.compile_count, counter.summary())


def _write_stats(counter, path) -> None:
    """The call counts as JSON (also after an error: what was served until then)."""
    if path is None:
        return
    try:
        counter.write_json(path)
    except OSError as error:
        log.warning("cannot write call counts to %s: %s", path, error)


def write_options(options: ServeOptions, path) -> None:
    """Write options as the JSON file the driver entry point reads."""
    with open(path, "w") as handle:
        json.dump(dataclasses.asdict(options), handle, indent=1)


def read_options(path) -> ServeOptions:
    """ServeOptions from a JSON file of its fields; UserError naming the file when unusable."""
    try:
        with open(path) as handle:
            fields = json.load(handle)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read driver options {path}: {error}") from None
    known = {field.name for field in dataclasses.fields(ServeOptions)}
    if not isinstance(fields, dict) or set(fields) - known:
        raise UserError(f"driver options {path}: unknown fields {sorted(set(fields) - known) if isinstance(fields, dict) else fields!r}")
    return ServeOptions(**fields)


def main(argv: list[str]) -> int:
    """Driver process: serve the options in argv[0] (a JSON file); one log line per error, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(DRIVER_LOG_PREFIX + "%(message)s"))
    logger = logging.getLogger("so3k")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    if len(argv) != 1:
        log.error("usage: python -m so3k_driver.ipi.serving OPTIONS.json (got %d arguments)", len(argv))
        return EXIT_WOULD_RECUR
    for key, value in GPU_MEMORY_DEFAULTS.items():
        os.environ.setdefault(key, value)  # before serve_model imports JAX
    try:
        serve_model(read_options(argv[0]))
    except Disconnected as error:
        log.error("i-PI went away without EXIT (%s); stopping", error)
        return EXIT_DISCONNECTED
    except (So3kError, FileNotFoundError) as error:
        # One line the runner reads back: the class says whether a restart could help.
        log.error("%s", driver_error_message(error))
        return EXIT_WOULD_RECUR
    return EXIT_FINISHED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
