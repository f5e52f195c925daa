"""The driver loop: talks the i-PI protocol over one or more connections and batches requests.

Physics lives in the ``compute`` callable (see compute.py); this module only moves messages.
Requests that arrive together on several connections with the same atom count are evaluated in
one ``compute`` call.
"""

from __future__ import annotations

import logging
import select

import numpy as np

from . import protocol as P
from .transport import Connection, Disconnected, SharedArrays

log = logging.getLogger("so3k.ipi")
SELECT_TIMEOUT_S = 5.0


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
            state = P.HAVEDATA if self.reply is not None else (P.READY if self.initialised else P.NEEDINIT)
            self.connection.send(P.header(state))
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


def compute_pending(sessions: list[ClientSession], compute) -> None:
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
        energies, forces, virials, extras = compute(cells, positions, pad_to=capacity)
        start = 0
        for session in members:
            stop = start + len(session.pending.positions)
            session.set_results(energies[start:stop], forces[start:stop], virials[start:stop], extras[start:stop])
            start = stop


def serve(connections: list[Connection], compute, use_shm: bool = False) -> int:
    """Serve i-PI until every connection got EXIT. Returns the number of force evaluations answered.

    Raises Disconnected when i-PI goes away without EXIT, and whatever ``compute`` raises
    (e.g. InputError for NaN positions); connections are closed in every case.
    """
    sessions = [ClientSession(c, use_shm) for c in connections]
    answered = 0
    try:
        while True:
            active = [s for s in sessions if not s.finished]
            if not active:
                return answered
            readable, _, _ = select.select(active, [], [], SELECT_TIMEOUT_S)
            for session in readable:
                session.handle_message()
            _gather_more(active)
            # Requests that arrived in this round, on any connection, go out as one batch.
            compute_pending(active, compute)
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


def _drain(session: ClientSession) -> None:
    sock = session.connection.sock
    try:
        sock.setblocking(False)
        while sock.recv(65536):
            pass
    except (BlockingIOError, OSError):
        pass


__all__ = ["serve", "ClientSession", "Disconnected", "compute_pending"]
