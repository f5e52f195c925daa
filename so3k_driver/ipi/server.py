"""The driver loop: talks the i-PI protocol over one or more connections and batches requests.

Physics lives in the ``compute`` callable (see compute.py); this module only moves messages.
Requests that arrive together on several connections with the same atom count are evaluated in
one ``compute`` call. When the driver knows how many structures a step brings (``per_step``: the
replicas/beads that use its forcefield) and some of its connections are still idle, it waits up
to ``GATHER_TIMEOUT_S`` for the rest of the step before computing, and stops waiting once waits
bring nothing: i-PI sends a forcefield's next requests only after all it has sent are answered,
so the rest of a step that i-PI dispatched in two rounds (a batch of 5, then one of 3 of 8)
cannot be waited for. ``CallCounter`` counts model calls per step (``ServeResult``, driver log).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import select
import threading
import time
from typing import Callable

import numpy as np

from . import protocol as P
from .transport import Connection, Disconnected, SharedArrays

log = logging.getLogger("so3k.ipi")
SELECT_TIMEOUT_S = 5.0
GATHER_TIMEOUT_S = 0.002  # i-PI hands a step's requests to its free clients within microseconds
FRUITLESS_WAITS = 20  # consecutive waits that brought nothing before the driver stops waiting
UNTIMED_CALLS = 10  # the first calls compile the model and warm caches: not the steady state that is timed


@dataclasses.dataclass
class CallCounter:
    """Model calls against the structures they evaluated.

    per_step: structures each MD step brings (replicas × beads using this forcefield; None when
    unknown). slots: structures received, i-PI's padding included (a short batch is filled up by
    repeating its last structure); distinct: without that padding. calls_per_step needs per_step;
    identical replicas (all of them at step 0) count once, so the first step reads as fewer.

    compiles: a probe of the model's compilation count (Potential.compile_count); a call during which
    it rose compiled a new shape (a pair-list bucket outgrown mid-run, seconds on a CPU) and is left
    out of the steady-state timing, counted in compiling_calls and compiling_s instead.
    """

    per_step: int | None = None
    gather_timeout_s: float = GATHER_TIMEOUT_S
    calls: int = 0
    slots: int = 0
    distinct: int = 0
    waits: int = 0  # waits for the rest of a step
    fruitful_waits: int = 0  # ... that brought more requests
    fruitless_in_a_row: int = 0
    # Steady-state timing, s, from the end of call UNTIMED_CALLS to the end of the last call:
    timed_s: float = 0.0  # that span
    timed_calls: int = 0  # calls in it
    timed_distinct: int = 0  # structures they evaluated (without i-PI's padding)
    model_s: float = 0.0  # inside the compute callable (model, unit conversion, force check)
    idle_s: float = 0.0  # blocked waiting for i-PI (select); the rest is the driver's own work
    # Waiting not yet followed by a call: it joins idle_s when the next call ends, so that the wait
    # after the last call (for i-PI's exit) stays out of a span that ends with that call.
    pending_idle_s: float = 0.0
    timed_from: float | None = None  # perf_counter at the start of the span
    compiles: Callable[[], int] | None = None
    compiling_calls: int = 0  # calls inside the span that compiled (not in timed_calls)
    compiling_s: float = 0.0  # their duration, taken out of the span
    compiles_seen: int | None = None

    def record_call(self, requests: list["Request"], started: float | None = None,
                    finished: float | None = None) -> None:
        """Count one compute call on requests; started/finished (time.perf_counter, s) bracket it."""
        self.calls += 1
        distinct = 0
        for request in requests:
            self.slots += len(request.positions)
            distinct += len(request.positions) - padding_slots(request)
        self.distinct += distinct
        compiled = False
        if self.compiles is not None:
            count = self.compiles()
            compiled = self.compiles_seen is not None and count != self.compiles_seen
            self.compiles_seen = count
        if finished is None:
            return
        if self.timed_from is not None:
            self.timed_s = finished - self.timed_from
            self.idle_s += self.pending_idle_s
            self.pending_idle_s = 0.0
            if compiled:
                self.compiling_calls += 1
                self.compiling_s += finished - started
                return
            self.timed_calls += 1
            self.timed_distinct += distinct
            self.model_s += finished - started
        elif self.calls >= UNTIMED_CALLS:
            self.timed_from = finished

    def record_idle(self, seconds: float) -> None:
        """Time spent waiting for i-PI; counted only inside the timed span."""
        if self.timed_from is not None:
            self.pending_idle_s += seconds

    @property
    def steps(self) -> float | None:
        return self.distinct / self.per_step if self.per_step else None

    @property
    def calls_per_step(self) -> float | None:
        return self.calls / self.steps if self.steps else None

    @property
    def waiting(self) -> bool:
        return self.per_step is not None and self.fruitless_in_a_row < FRUITLESS_WAITS

    def timing(self) -> dict:
        """Steady-state milliseconds (None before any call was timed): ms_per_call between the ends
        of consecutive calls, model_ms_per_call inside compute, idle_ms_per_call waiting for i-PI,
        own_ms_per_call the driver's own work in between (read, decode, encode, send), and
        ms_per_step (needs per_step): what one MD step costs as seen from the driver. Calls that
        compiled are not in these figures (compiling_calls, compiling_s)."""
        if not self.timed_calls:
            return {"ms_per_call": None, "model_ms_per_call": None, "idle_ms_per_call": None,
                    "own_ms_per_call": None, "ms_per_step": None}
        per_call = 1e3 / self.timed_calls
        span = self.timed_s - self.compiling_s
        steps = self.timed_distinct / self.per_step if self.per_step else None
        return {"ms_per_call": span * per_call, "model_ms_per_call": self.model_s * per_call,
                "idle_ms_per_call": self.idle_s * per_call,
                "own_ms_per_call": max(span - self.model_s - self.idle_s, 0.0) * per_call,
                "ms_per_step": 1e3 * span / steps if steps else None}

    def summary(self) -> dict:
        """JSON-ready counts and timing; calls_per_step, steps and ms_per_step are None when per_step is unknown."""
        record = dataclasses.asdict(self)
        for name in ("fruitless_in_a_row", "timed_from", "compiles", "compiles_seen", "pending_idle_s"):
            record.pop(name)
        record["steps"] = self.steps
        record["calls_per_step"] = self.calls_per_step
        record.update(self.timing())
        return record

    def write_json(self, path: str) -> None:
        """summary() as JSON at path, whole or not at all.

        i-PI may write the counts twice at its exit (soft exit and atexit, in different threads) and end the
        process mid-way: a write in place could then leave a truncated or empty file. The counts go to a
        temporary file beside path that replaces it once complete. OSError is the caller's to handle.
        """
        temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.part"
        try:
            with open(temporary, "w") as handle:
                json.dump(self.summary(), handle, indent=1)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)


def padding_slots(request: "Request") -> int:
    """Trailing slots of a batched request that repeat the slot before (i-PI's padding)."""
    copies, last = 0, len(request.positions) - 1
    while copies < last and np.array_equal(request.positions[last - copies], request.positions[last - copies - 1]) \
            and np.array_equal(request.cells[last - copies], request.cells[last - copies - 1]):
        copies += 1
    return copies


class Request:
    """Structures received in one POSDATA: cells (B, 3, 3) and positions (B, N, 3), bohr."""

    def __init__(self, cells: np.ndarray, positions: np.ndarray):
        self.cells = cells
        self.positions = positions


class ClientSession:
    """Protocol state of one connection to i-PI."""

    def __init__(self, connection: Connection, use_shm: bool = False):
        self.connection = connection
        self.use_shm = use_shm
        self.initialised = False
        self.batch_size = 1
        self.replica_id = 0
        self.pending: Request | None = None  # received, not yet computed
        self.reply: bytes | None = None  # computed, waiting for GETFORCE
        self.shared: SharedArrays | None = None
        self.finished = False
        self.exchanges = 0

    @property
    def label(self) -> str:
        return self.connection.label

    def fileno(self) -> int:
        return self.connection.fileno()

    def handle_message(self) -> None:
        """Read and answer one message; a POSDATA leaves a ``pending`` request behind."""
        name = P.decode_header(self.connection.recv_exact(P.HEADER_LENGTH))
        if name == P.STATUS:
            self._answer_status()
        elif name == P.INIT:
            self.replica_id = P.read_int32(self.connection.recv_exact(4))
            length = P.read_int32(self.connection.recv_exact(4))
            text = self.connection.recv_exact(length).decode("utf-8", errors="replace")
            self.batch_size = P.batch_size_from_init(text)
            self.initialised = True
            log.info("%s: INIT replica %d, batch size %d, parameters %r", self.label, self.replica_id,
                     self.batch_size, text.strip())
        elif name == P.POSDATA:
            self.pending = self._read_shm_posdata() if self.use_shm else self._read_posdata()
        elif name == P.GETFORCE:
            if self.reply is None:
                raise P.ProtocolError("GETFORCE before any POSDATA")
            self.connection.send(self.reply)
            self.reply = None
            self.exchanges += 1
        elif name == P.EXIT:
            log.info("%s: i-PI sent EXIT", self.label)
            self.finished = True
        else:
            raise P.ProtocolError(f"unexpected message {name} from i-PI")

    def _answer_status(self) -> None:
        state = P.HAVEDATA if self.reply is not None else (P.READY if self.initialised else P.NEEDINIT)
        self.connection.send(P.header(state))

    def answer_greeting(self) -> None:
        """Answer the STATUS i-PI sends a client it has just accepted (NEEDINIT: a fresh session).

        i-PI accepts one client at a time and waits for this answer before it accepts the next, and its
        listen backlog holds at most 5 waiting clients: a process that opens more connections than that
        before answering any would wait forever. So each connection is answered as soon as it is open."""
        name = P.decode_header(self.connection.recv_exact(P.HEADER_LENGTH))
        if name != P.STATUS:
            raise P.ProtocolError(f"{self.label}: i-PI's first message was {name}, expected STATUS")
        self._answer_status()

    def _read_posdata(self) -> Request:
        recv = self.connection.recv_exact
        if self.batch_size > 1:  # nat, B cells, B position blocks
            natoms = P.read_int32(recv(4))
            cell_bytes, position_bytes = P.posdata_sizes(self.batch_size, natoms)
            cells = P.decode_cells(recv(cell_bytes), self.batch_size)
            positions = P.decode_positions(recv(position_bytes), self.batch_size, natoms)
        else:  # h, h^-1, nat, positions
            cells = P.decode_cells(recv(P.posdata_sizes(1, 0)[0]), 1)
            natoms = P.read_int32(recv(4))
            positions = P.decode_positions(recv(P.posdata_sizes(1, natoms)[1]), 1, natoms)
        return Request(cells, positions)

    def _read_shm_posdata(self) -> Request:
        natoms = P.read_int32(self.connection.recv_exact(4))
        if self.shared is None:  # first exchange carries the six segment names
            names = []
            for _ in P.SHM_SEGMENT_KINDS:
                length = P.read_int32(self.connection.recv_exact(4))
                names.append(self.connection.recv_exact(length).decode("utf-8"))
            self.shared = SharedArrays(names, self.batch_size, natoms)
        if self.shared.arrays["pos"].shape[1] != natoms:
            raise P.ProtocolError(f"i-PI changed the atom count to {natoms} on a shared-memory connection")
        arrays = self.shared.arrays
        return Request(arrays["h"].copy(), arrays["pos"].copy())

    def set_results(self, energies, forces, virials, extras) -> None:
        if self.use_shm:
            arrays = self.shared.arrays
            arrays["pot"][:] = energies
            arrays["force"][:] = forces
            arrays["vir"][:] = virials
            self.reply = P.header(P.FORCEREADY) + P.encode_extras(extras)
        else:
            self.reply = P.encode_forceready(energies, forces, virials, extras)
        self.pending = None

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
        self.connection.close()


def compute_pending(sessions: list[ClientSession], compute, counter: CallCounter | None = None) -> None:
    """Evaluate all pending requests, grouped by atom count, one compute call per group."""
    groups: dict[int, list[ClientSession]] = {}
    for session in sessions:
        if session.pending is not None:
            groups.setdefault(session.pending.positions.shape[1], []).append(session)
    # Every call is sized for the capacity of all connections, so the jitted model keeps one batch
    # shape (one compilation) however many replicas happened to arrive together.
    capacity = sum(s.batch_size for s in sessions)
    for members in groups.values():
        cells = np.concatenate([s.pending.cells for s in members])
        positions = np.concatenate([s.pending.positions for s in members])
        started = time.perf_counter()
        energies, forces, virials, extras = compute(cells, positions, pad_to=capacity)
        if counter is not None:
            counter.record_call([s.pending for s in members], started, time.perf_counter())
        start = 0
        for session in members:
            stop = start + len(session.pending.positions)
            session.set_results(energies[start:stop], forces[start:stop], virials[start:stop], extras[start:stop])
            start = stop


def serve(connections: list[Connection | ClientSession], compute, use_shm: bool = False,
          counter: CallCounter | None = None) -> int:
    """Serve i-PI until every connection got EXIT. Returns the number of force evaluations answered.

    connections: plain connections, or sessions already opened (e.g. greeted with
    ``ClientSession.answer_greeting`` while further connections were being made).

    counter: counts model calls (and, with its per_step set, waits for the rest of a step).
    Raises Disconnected when i-PI goes away without EXIT, and whatever ``compute`` raises
    (e.g. InputError for NaN positions); connections are closed in every case.
    """
    sessions = [c if isinstance(c, ClientSession) else ClientSession(c, use_shm) for c in connections]
    counter = counter if counter is not None else CallCounter()
    answered = 0
    try:
        while True:
            active = [s for s in sessions if not s.finished]
            if not active:
                return answered
            waiting = time.perf_counter()
            readable, _, _ = select.select(active, [], [], SELECT_TIMEOUT_S)
            counter.record_idle(time.perf_counter() - waiting)
            for session in readable:
                session.handle_message()
            _gather_more(active)
            _wait_for_step(active, counter)
            # Requests that arrived in this round, on any connection, go out as one batch.
            compute_pending(active, compute, counter)
            answered = sum(s.exchanges for s in sessions)
    except BaseException:
        # Drain what i-PI already sent (the GETFORCE following a POSDATA) so that closing sends a
        # clean EOF, not a reset: i-PI 3.3.1 re-queues the request on EOF but may hang on a reset.
        for session in sessions:
            _drain(session)
        raise
    finally:
        for session in sessions:
            session.close()


def _gather_more(active: list[ClientSession]) -> None:
    """Read whatever other connections already have waiting, so simultaneous requests share a batch."""
    while True:
        idle = [s for s in active if s.pending is None and not s.finished]
        ready = select.select(idle, [], [], 0)[0] if idle else []
        if not ready:
            return
        for session in ready:
            session.handle_message()


def _wait_for_step(active: list[ClientSession], counter: CallCounter) -> None:
    """Wait up to counter.gather_timeout_s for the rest of a step on idle connections (see the module doc)."""
    pending = [s for s in active if s.pending is not None]
    idle = [s for s in active if s.pending is None and not s.finished]
    if not pending or not idle or not counter.waiting:
        return  # with every connection busy, i-PI sends nothing more before we answer
    received = sum(len(s.pending.positions) - padding_slots(s.pending) for s in pending)
    if received >= counter.per_step:
        return
    deadline = time.monotonic() + counter.gather_timeout_s
    counter.waits += 1
    gained = False
    while received < counter.per_step:
        idle = [s for s in active if s.pending is None and not s.finished]
        remaining = deadline - time.monotonic()
        if not idle or remaining <= 0:
            break
        waiting = time.perf_counter()
        ready = select.select(idle, [], [], remaining)[0]
        counter.record_idle(time.perf_counter() - waiting)
        for session in ready:
            session.handle_message()
            if session.pending is not None:
                received += len(session.pending.positions) - padding_slots(session.pending)
                gained = True
    counter.fruitful_waits += gained
    counter.fruitless_in_a_row = 0 if gained else counter.fruitless_in_a_row + 1


def _drain(session: ClientSession) -> None:
    sock = session.connection.sock
    try:
        sock.setblocking(False)
        while sock.recv(65536):
            pass
    except (BlockingIOError, OSError):
        pass


__all__ = ["serve", "ClientSession", "Disconnected", "compute_pending", "CallCounter"]
