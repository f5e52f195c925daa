"""Transports to i-PI: unix-domain or TCP sockets, and i-PI's shared-memory segments.

Only bytes move here. A 0-byte read or a reset is turned into ``Disconnected`` so the driver
stops instead of spinning (the reference driver busy-loops on EOF).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import time

import numpy as np
from ..errors import Disconnected

log = logging.getLogger("so3k.ipi")

DEFAULT_PREFIX = "/tmp/ipi_"
CONNECT_TIMEOUT_S = 60.0  # total time spent retrying a connection
MESSAGE_TIMEOUT_S = 120.0  # silence allowed inside a partially received message



def unix_socket_path(address: str, prefix: str = DEFAULT_PREFIX) -> str:
    return address if address.startswith("/") else prefix + address


class Connection:
    """One socket to i-PI with exact-size reads, reading ahead whatever i-PI has already sent.

    Why read ahead: i-PI sends POSDATA and the GETFORCE that follows it in one write. Left in the
    kernel while the model computes, that GETFORCE turns the death of this process (SIGKILL, OOM)
    into a connection *reset*, on which i-PI 3.3.1's consolidated poll thread dies and the run
    hangs; with nothing unread the kernel sends a clean EOF, on which i-PI re-queues the request
    for the next driver. Bytes held here are invisible to ``select`` on the socket, so
    ``fileno()`` then returns an always-readable pipe instead.
    """

    READ_AHEAD_BYTES = 65536

    def __init__(self, sock: socket.socket, label: str):
        self.sock = sock
        self.label = label
        self._buffer = bytearray()
        self._ready_read, self._ready_write = os.pipe()
        os.write(self._ready_write, b"!")  # never read: the pipe stays readable

    def fileno(self) -> int:
        return self._ready_read if self._buffer else self.sock.fileno()

    def recv_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            try:
                chunk = self.sock.recv(max(size - len(self._buffer), self.READ_AHEAD_BYTES))
            except socket.timeout:
                raise Disconnected(f"{self.label}: i-PI silent for {MESSAGE_TIMEOUT_S:.0f} s inside a message") from None
            except OSError as error:  # reset, broken pipe
                raise Disconnected(f"{self.label}: connection lost ({error})") from None
            if not chunk:
                raise Disconnected(f"{self.label}: i-PI closed the connection")
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as error:
            raise Disconnected(f"{self.label}: connection lost while sending ({error})") from None

    def close(self) -> None:
        """Orderly close: FIN, not RST (i-PI 3.3.1 handles EOF but can hang on a reset)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for descriptor in (self._ready_read, self._ready_write):
            try:
                os.close(descriptor)
            except OSError:
                pass
        self._ready_read = self._ready_write = -1


def connect(*, unix: str | None = None, inet: tuple[str, int] | None = None, prefix: str = DEFAULT_PREFIX,
            timeout_s: float = CONNECT_TIMEOUT_S, verify_peer: bool = True) -> Connection:
    """Connect to i-PI, retrying with exponential backoff for at most ``timeout_s`` seconds.

    verify_peer: wait for i-PI's greeting and refuse a peer that is not i-PI (the greeting is only
    peeked at: ``server.ClientSession.answer_greeting`` answers it). Once is enough per process:
    i-PI accepts the next client only after the previous one answered its greeting.
    """
    if unix is not None:
        path = unix_socket_path(unix, prefix)
        family, target, label = socket.AF_UNIX, path, f"unix socket {path}"
    else:
        host, port = inet
        family, target, label = socket.AF_INET, (host, port), f"inet {host}:{port}"
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.connect(target)
            break
        except OSError as error:
            sock.close()
            if time.monotonic() + delay > deadline:
                raise ConnectionError(
                    f"cannot connect to i-PI at {label} after {timeout_s:.0f} s ({error.strerror or error}); "
                    "is i-PI running with this address?") from None
            time.sleep(delay)
            delay = min(2 * delay, 5.0)
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if verify_peer:
        try:
            _check_ipi_greeting(sock, label, max(1.0, deadline - time.monotonic()) if family == socket.AF_INET else None)
        except ConnectionError:
            sock.close()
            raise
    sock.settimeout(MESSAGE_TIMEOUT_S)
    log.info("connected to i-PI at %s", label)
    return Connection(sock, label)


def _check_ipi_greeting(sock: socket.socket, label: str, silence_s: float | None) -> None:
    """Refuse a peer that is not i-PI: i-PI greets a new client with a STATUS header.

    Something else listening on the port (a web server, ssh) either sends bytes that are no i-PI
    header (refused at once) or nothing: after silence_s seconds (None: wait; a unix socket of
    i-PI's may be busy with other clients) that is an error too, instead of a silent hang.
    """
    from .protocol import HEADER_LENGTH, KNOWN_HEADERS

    if silence_s is not None and not select.select([sock], [], [], silence_s)[0]:
        raise ConnectionError(f"connected to {label}, but nothing there spoke i-PI's protocol within {silence_s:.0f} s: "
                              "is something other than i-PI listening on this address?")
    sock.settimeout(silence_s)
    try:
        greeting = sock.recv(HEADER_LENGTH, socket.MSG_PEEK)
    except OSError as error:
        raise ConnectionError(f"connected to {label}, but it failed at once ({error}); is i-PI listening there?") from None
    finally:
        sock.settimeout(None)
    if not greeting:
        raise ConnectionError(f"connected to {label}, but it closed the connection at once: not an i-PI socket")
    if not any(name.ljust(HEADER_LENGTH).encode("ascii").startswith(greeting) for name in KNOWN_HEADERS):
        raise ConnectionError(f"connected to {label}, but it sent {greeting!r}, which is not i-PI's protocol: "
                              "something other than i-PI listens on this address")


class SharedArrays:
    """Numpy views on the six POSIX shared-memory segments i-PI created for one client.

    i-PI owns the segments (it unlinks them); we unregister them from Python's resource tracker
    so that our exit does not unlink them under i-PI's feet.
    """

    def __init__(self, names: list[str], batch_size: int, natoms: int):
        from multiprocessing import resource_tracker, shared_memory

        shapes = {"pos": (batch_size, natoms, 3), "h": (batch_size, 3, 3), "ih": (batch_size, 3, 3),
                  "pot": (batch_size,), "force": (batch_size, natoms, 3), "vir": (batch_size, 3, 3)}
        self._segments = []
        self.arrays: dict[str, np.ndarray] = {}
        for kind, name in zip(shapes, names):
            segment = shared_memory.SharedMemory(name=name)
            try:
                resource_tracker.unregister(segment._name, "shared_memory")
            except Exception:  # tracker not running: nothing to undo
                pass
            self._segments.append(segment)
            self.arrays[kind] = np.ndarray(shapes[kind], dtype=np.float64, buffer=segment.buf)

    def close(self) -> None:
        self.arrays.clear()
        for segment in self._segments:
            try:
                segment.close()
            except BufferError:  # a view still alive; the OS frees it at exit
                pass
        self._segments.clear()


def remove_stale_unix_socket(path: str) -> bool:
    """Remove ``path`` if it is a socket file nobody listens on; True if removed.

    Raises FileExistsError if a live server answers there (another i-PI uses this address).
    """
    if not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return True
    finally:
        probe.close()
    raise FileExistsError(f"{path} is in use by a running i-PI; choose another address")
