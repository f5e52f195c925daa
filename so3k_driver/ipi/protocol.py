"""i-PI 3.3 socket protocol: headers and message layouts, free of transport and physics.

Headers are 12 ASCII bytes padded with spaces; integers are int32, reals float64, native byte
order. A batched exchange (``batch_size`` B > 1 announced in the INIT string) sends all cells
first, then all positions; the reply carries B energies, one atom count, B force blocks, B
virials and B length-prefixed extra strings. For B = 1 that reply layout is exactly the
non-batched one, so one encoder serves both.
"""

from __future__ import annotations

import numpy as np
from ..errors import ProtocolError

HEADER_LENGTH = 12
STATUS, NEEDINIT, INIT, READY, HAVEDATA = "STATUS", "NEEDINIT", "INIT", "READY", "HAVEDATA"
POSDATA, GETFORCE, FORCEREADY, EXIT = "POSDATA", "GETFORCE", "FORCEREADY", "EXIT"
KNOWN_HEADERS = {STATUS, NEEDINIT, INIT, READY, HAVEDATA, POSDATA, GETFORCE, FORCEREADY, EXIT}
SHM_SEGMENT_KINDS = ("pos", "h", "ih", "pot", "force", "vir")  # order i-PI sends the names in

INT32 = np.dtype(np.int32)
FLOAT64 = np.dtype(np.float64)



def header(name: str) -> bytes:
    return name.ljust(HEADER_LENGTH).encode("ascii")


def decode_header(raw: bytes) -> str:
    name = raw.decode("ascii", errors="replace").strip()
    if name not in KNOWN_HEADERS:
        raise ProtocolError(f"unknown message header {raw!r}")
    return name


def int32(value: int) -> bytes:
    return np.int32(value).tobytes()


def read_int32(raw: bytes) -> int:
    return int(np.frombuffer(raw, INT32, count=1)[0])


def parse_init_string(text: str) -> dict[str, str]:
    """Parse ``" key : value , key : value , batch_size:4"`` into a dict (empty items skipped)."""
    parameters = {}
    for item in text.split(","):
        if ":" in item:
            key, value = item.split(":", 1)
            parameters[key.strip()] = value.strip()
    return parameters


def batch_size_from_init(text: str) -> int:
    value = parse_init_string(text).get("batch_size", "1")
    try:
        size = int(value)
    except ValueError:
        raise ProtocolError(f"batch_size {value!r} in the INIT string is not an integer") from None
    if size < 1:
        raise ProtocolError(f"batch_size {size} in the INIT string must be >= 1")
    return size


def posdata_sizes(batch_size: int, natoms: int) -> tuple[int, int]:
    """Bytes of the cells block (h and h^-1 per structure) and of the positions block."""
    return batch_size * 18 * FLOAT64.itemsize, batch_size * 3 * natoms * FLOAT64.itemsize


def decode_cells(raw: bytes, batch_size: int) -> np.ndarray:
    """Cell block -> h (B, 3, 3) in bohr, vectors as columns (h^-1 is dropped)."""
    values = np.frombuffer(raw, FLOAT64).reshape(batch_size, 2, 3, 3)
    return values[:, 0].copy()


def decode_positions(raw: bytes, batch_size: int, natoms: int) -> np.ndarray:
    return np.frombuffer(raw, FLOAT64).reshape(batch_size, natoms, 3).copy()


def encode_extras(extras: list[str]) -> bytes:
    parts = []
    for text in extras:
        data = text.encode("utf-8")
        parts.append(int32(len(data)) + data)
    return b"".join(parts)


def encode_forceready(energies, forces, virials, extras: list[str]) -> bytes:
    """FORCEREADY reply for B structures: energies (B,) Ha, forces (B, N, 3) Ha/bohr, virials (B, 3, 3) Ha."""
    energies = np.ascontiguousarray(energies, dtype=np.float64)
    forces = np.ascontiguousarray(forces, dtype=np.float64)
    virials = np.ascontiguousarray(virials, dtype=np.float64)
    return (header(FORCEREADY) + energies.tobytes() + int32(forces.shape[1]) + forces.tobytes()
            + virials.tobytes() + encode_extras(extras))
