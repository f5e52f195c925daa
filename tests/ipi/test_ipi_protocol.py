"""The i-PI wire protocol against a scripted fake i-PI (no i-PI process, no model): fast."""

import json
import socket
import threading

import numpy as np
import pytest

from so3k_driver.errors import UserError
from so3k_driver.ipi import conversion, protocol as P
from so3k_driver.ipi.server import serve
from so3k_driver.ipi.transport import Connection, Disconnected
from so3k_driver.units import BOHR_IN_ANGSTROM, EV_IN_HARTREE, EV_PER_ANGSTROM_IN_HARTREE_PER_BOHR


def test_init_string_parsing():
    assert P.batch_size_from_init(" ") == 1
    assert P.batch_size_from_init(" batch_size:4") == 4
    assert P.batch_size_from_init(" foo : 1 , bar : abc , , batch_size:4") == 4
    assert P.parse_init_string(" foo : 1 , bar : abc , , batch_size:4")["bar"] == "abc"


def test_conversions_transpose_cell_and_virial():
    h = np.array([[10.0, 1.0, 2.0], [0.0, 11.0, 3.0], [0.0, 0.0, 12.0]])  # columns = lattice vectors
    rows = conversion.cells_to_angstrom_rows(h)
    np.testing.assert_allclose(rows[1], h[:, 1] * BOHR_IN_ANGSTROM)
    assert conversion.energies_to_hartree(np.array([1.0]))[0] == EV_IN_HARTREE
    assert conversion.forces_to_atomic(np.ones(3))[0] == EV_PER_ANGSTROM_IN_HARTREE_PER_BOHR
    v = np.arange(9.0).reshape(3, 3)
    np.testing.assert_allclose(conversion.virials_to_hartree(v), v.T * EV_IN_HARTREE)


def fake_compute(calls):
    """Energy = sum of x coordinates; force = -positions; extras carry the slot index. ``calls``
    records the batch size each call is sized for (the model's compiled shape)."""
    def compute(cells, positions, pad_to=None):
        calls.append(max(len(positions), pad_to or 0))
        energies = positions[:, :, 0].sum(axis=1)
        extras = [json.dumps({"slot": i}) for i in range(len(positions))]
        return energies, -positions, np.zeros((len(positions), 3, 3)), extras
    return compute


class FakeIPI:
    """Plays i-PI's side of a consolidated exchange over a socket pair."""

    def __init__(self, sock):
        self.sock = sock

    def send(self, *parts):
        self.sock.sendall(b"".join(parts))

    def recv(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "driver closed"
            data += chunk
        return data

    def status(self):
        self.send(P.header(P.STATUS))
        return self.recv(12).decode().strip()

    def init(self, text):
        data = text.encode()
        self.send(P.header(P.INIT), P.int32(0), P.int32(len(data)), data)

    def batched_request(self, cells, positions):
        batch, natoms = positions.shape[:2]
        blocks = b"".join(np.concatenate([c.ravel(), np.linalg.inv(c).ravel()]).tobytes() for c in cells)
        self.send(P.header(P.POSDATA), P.int32(natoms), blocks, positions.tobytes(), P.header(P.GETFORCE))
        assert self.recv(12) == P.header(P.FORCEREADY)
        energies = np.frombuffer(self.recv(8 * batch), np.float64)
        assert np.frombuffer(self.recv(4), np.int32)[0] == natoms
        forces = np.frombuffer(self.recv(24 * natoms * batch), np.float64).reshape(batch, natoms, 3)
        self.recv(72 * batch)
        extras = []
        for _ in range(batch):
            length = np.frombuffer(self.recv(4), np.int32)[0]
            extras.append(json.loads(self.recv(length)))
        return energies, forces, extras

    def single_request(self, cell, positions):
        natoms = len(positions)
        self.send(P.header(P.POSDATA), cell.tobytes(), np.linalg.inv(cell).tobytes(), P.int32(natoms),
                  positions.tobytes(), P.header(P.GETFORCE))
        assert self.recv(12) == P.header(P.FORCEREADY)
        energy = np.frombuffer(self.recv(8), np.float64)[0]
        self.recv(4)
        forces = np.frombuffer(self.recv(24 * natoms), np.float64).reshape(natoms, 3)
        self.recv(72)
        length = np.frombuffer(self.recv(4), np.int32)[0]
        return energy, forces, json.loads(self.recv(length))


def run_driver(sockets, compute):
    outcome = {}

    def target():
        try:
            outcome["answered"] = serve([Connection(s, f"pair{i}") for i, s in enumerate(sockets)], compute)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            outcome["error"] = error
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def test_batched_exchange_padding_and_extras():
    ipi_side, driver_side = socket.socketpair()
    calls = []
    thread, outcome = run_driver([driver_side], fake_compute(calls))
    ipi = FakeIPI(ipi_side)
    assert ipi.status() == "NEEDINIT"  # a batch-capable client must ask for INIT
    ipi.init(" batch_size:4")
    assert ipi.status() == "READY"
    cells = np.repeat(np.eye(3)[None] * 20.0, 4, axis=0)
    positions = np.random.default_rng(0).normal(size=(4, 5, 3))
    positions[3] = positions[2]  # i-PI pads by repeating the last structure
    energies, forces, extras = ipi.batched_request(cells, positions)
    np.testing.assert_allclose(energies, positions[:, :, 0].sum(axis=1))
    np.testing.assert_allclose(forces, -positions)
    assert [e["slot"] for e in extras] == [0, 1, 2, 3]  # one extra per slot, padded slot included
    assert calls == [4]  # the whole batch, padding included, in ONE compute call
    assert ipi.status() == "READY"
    ipi.send(P.header(P.EXIT))
    thread.join(5)
    assert outcome == {"answered": 1}


def test_unbatched_exchange():
    ipi_side, driver_side = socket.socketpair()
    thread, outcome = run_driver([driver_side], fake_compute([]))
    ipi = FakeIPI(ipi_side)
    assert ipi.status() == "NEEDINIT"
    ipi.init(" ")
    assert ipi.status() == "READY"
    positions = np.arange(6.0).reshape(2, 3)
    energy, forces, extra = ipi.single_request(np.eye(3) * 30, positions)
    assert energy == positions[:, 0].sum() and extra == {"slot": 0}
    ipi.send(P.header(P.EXIT))
    thread.join(5)
    assert outcome["answered"] == 1


def test_eof_stops_the_driver():
    ipi_side, driver_side = socket.socketpair()
    thread, outcome = run_driver([driver_side], fake_compute([]))
    FakeIPI(ipi_side).status()
    ipi_side.close()
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(outcome["error"], Disconnected)


def test_compute_error_closes_the_connection_cleanly():
    from so3k_driver.evaluation.validation import InputError

    def failing(cells, positions, pad_to=None):
        raise InputError("non-finite position (NaN or inf) for atom 1 of structure 1 (both 1-based)")

    ipi_side, driver_side = socket.socketpair()
    thread, outcome = run_driver([driver_side], failing)
    ipi = FakeIPI(ipi_side)
    ipi.status()
    ipi.init(" ")
    ipi.status()
    nan = np.full((2, 3), np.nan)
    ipi.send(P.header(P.POSDATA), np.eye(3).tobytes(), np.eye(3).tobytes(), P.int32(2), nan.tobytes(),
             P.header(P.GETFORCE))
    thread.join(5)
    assert isinstance(outcome["error"], InputError)
    assert ipi_side.recv(12) == b""  # orderly EOF (not a reset): i-PI re-queues instead of hanging


def test_two_connections_share_one_batch():
    pairs = [socket.socketpair() for _ in range(2)]
    calls = []
    thread, outcome = run_driver([p[1] for p in pairs], fake_compute(calls))
    fakes = [FakeIPI(p[0]) for p in pairs]
    for fake in fakes:
        assert fake.status() == "NEEDINIT"
        fake.init(" ")
        assert fake.status() == "READY"
    positions = [np.full((3, 3), float(i + 1)) for i in range(2)]
    for fake, pos in zip(fakes, positions):  # both requests in flight before reading replies
        fake.send(P.header(P.POSDATA), np.eye(3).tobytes(), np.eye(3).tobytes(), P.int32(3), pos.tobytes(),
                  P.header(P.GETFORCE))
    for fake, pos in zip(fakes, positions):
        assert fake.recv(12) == P.header(P.FORCEREADY)
        assert np.frombuffer(fake.recv(8), np.float64)[0] == pos[:, 0].sum()
        fake.recv(4 + 72 + 72)
        fake.recv(int(np.frombuffer(fake.recv(4), np.int32)[0]))
    for fake in fakes:
        fake.send(P.header(P.EXIT))
    thread.join(5)
    assert outcome["answered"] == 2
    assert all(n == 2 for n in calls)  # sized for the capacity of both connections: one shape


@pytest.mark.shared
def test_compute_returns_potential_forces_in_atomic_units(so3krates32):
    from so3k_driver.ipi.compute import make_compute
    from so3k_driver.ipi.structures import read_numbers
    from conftest import REPO

    numbers = read_numbers(str(REPO / "ipi_inputs" / "ala3.xyz"))
    positions_bohr = np.loadtxt(REPO / "ipi_inputs" / "ala3.xyz", skiprows=2, usecols=(1, 2, 3)) / BOHR_IN_ANGSTROM
    compute = make_compute(so3krates32, numbers)
    energies, forces, virials, extras = compute(np.eye(3)[None] * 50, positions_bohr[None])
    reference = so3krates32.evaluate(numbers, positions_bohr * BOHR_IN_ANGSTROM)
    np.testing.assert_allclose(forces[0], reference.forces[0] * EV_PER_ANGSTROM_IN_HARTREE_PER_BOHR, rtol=1e-6)
    np.testing.assert_allclose(energies[0], reference.energy[0] * EV_IN_HARTREE, rtol=1e-6)
    assert not virials.any() and "time_s" in json.loads(extras[0])


@pytest.mark.shared
def test_a_force_beyond_the_limit_stops_the_driver_with_a_clear_error(so3krates32):
    """A model outside its domain lets a molecule explode (seen at 450 K): the driver refuses to go on."""
    from so3k_driver.ipi.compute import ModelBreakdown, make_compute
    from so3k_driver.ipi.structures import read_numbers
    from conftest import REPO

    numbers = read_numbers(str(REPO / "ipi_inputs" / "ala3.xyz"))
    positions_bohr = np.loadtxt(REPO / "ipi_inputs" / "ala3.xyz", skiprows=2, usecols=(1, 2, 3)) / BOHR_IN_ANGSTROM
    largest = np.linalg.norm(so3krates32.evaluate(numbers, positions_bohr * BOHR_IN_ANGSTROM).forces[0], axis=-1)
    cell = np.eye(3)[None] * 50
    make_compute(so3krates32, numbers, max_force=1.01 * largest.max())(cell, positions_bohr[None])  # passes
    make_compute(so3krates32, numbers, max_force=0)(cell, positions_bohr[None])  # check switched off
    with pytest.raises(ModelBreakdown, match=rf"on atom {largest.argmax() + 1} \(1-based.*--max-force"):
        make_compute(so3krates32, numbers, max_force=0.99 * largest.max())(cell, positions_bohr[None])


def ala3_bohr():
    from so3k_driver.ipi.structures import read_numbers
    from conftest import REPO

    numbers = read_numbers(str(REPO / "ipi_inputs" / "ala3.xyz"))
    return numbers, np.loadtxt(REPO / "ipi_inputs" / "ala3.xyz", skiprows=2, usecols=(1, 2, 3)) / BOHR_IN_ANGSTROM


class CalmPotential:
    """Stands in for the model: zero energy and forces, so only the bond guard can object."""

    def evaluate(self, numbers, positions, cells=None, **options):
        from types import SimpleNamespace

        return SimpleNamespace(energy=np.zeros(len(positions)), forces=np.zeros(positions.shape), virial=None,
                               extras={}, wall_time=0.0)


def stretched_c_h(numbers, positions_bohr, length_angstrom):
    """(carbon, hydrogen, positions in bohr) with the first C–H bond at length_angstrom."""
    from so3k_driver.evaluation.topology import bond_pairs

    carbon, hydrogen = next((i, j) for i, j in bond_pairs(numbers, positions_bohr * BOHR_IN_ANGSTROM)
                            if (numbers[i], numbers[j]) == (6, 1))
    bond = positions_bohr[hydrogen] - positions_bohr[carbon]
    moved = positions_bohr.copy()
    moved[hydrogen] = positions_bohr[carbon] + bond * length_angstrom / (np.linalg.norm(bond) * BOHR_IN_ANGSTROM)
    return carbon, hydrogen, moved


def test_a_broken_bond_stops_the_driver_naming_the_bond():
    """The bond guard: the bonds of the first structure i-PI sends; one stretched past 1.6 × the sum
    of covalent radii stops the driver at once (student v2 ran 10 ps on a broken molecule before
    its forces reached the force guard)."""
    from so3k_driver.ipi.compute import ModelBreakdown, make_compute

    numbers, positions_bohr = ala3_bohr()
    carbon, hydrogen, broken = stretched_c_h(numbers, positions_bohr, 2.0)  # limit 1.6 × (0.76 + 0.31) = 1.71 Å
    _, _, hot = stretched_c_h(numbers, positions_bohr, 1.6)
    cells = np.repeat(np.eye(3)[None] * 50, 3, axis=0)
    compute = make_compute(CalmPotential(), numbers)
    compute(cells[:1], positions_bohr[None])  # the reference
    compute(cells[:1], hot[None])  # hot, not broken
    with pytest.raises(ModelBreakdown, match=rf"^bond C{carbon + 1}–H{hydrogen + 1} \(1-based\) of structure 2 in "
                                             r"this request is 2\.00 Å long, above the limit of 1\.71 Å .*"
                                             r"--max-bond-stretch 0 disables this check\)$"):
        compute(cells, np.stack([hot, broken, positions_bohr]))
    make_compute(CalmPotential(), numbers, max_bond_stretch=0)(cells[:2], np.stack([positions_bohr, broken]))  # off
    # given reference positions (Å), the first request is checked against them too
    with pytest.raises(ModelBreakdown, match=f"C{carbon + 1}–H{hydrogen + 1}"):
        make_compute(CalmPotential(), numbers, reference_positions=positions_bohr * BOHR_IN_ANGSTROM)(cells[:1], broken[None])
    with pytest.raises(UserError, match="max_bond_stretch must be >= 0"):
        make_compute(CalmPotential(), numbers, max_bond_stretch=-1)


def test_a_periodic_driver_checks_bonds_with_the_minimum_image():
    """i-PI may send a molecule split by the cell boundary; its bonds are whole through the image."""
    from so3k_driver.ipi.compute import ModelBreakdown, make_compute

    numbers, positions_bohr = ala3_bohr()
    h_bohr = np.array([[40.0, 5.0, -3.0], [0.0, 38.0, 4.0], [0.0, 0.0, 36.0]])  # i-PI's layout: vectors as columns
    shifted = positions_bohr - positions_bohr.mean(axis=0) + h_bohr.sum(axis=1)  # across a corner of the cell
    fractional = shifted @ np.linalg.inv(h_bohr).T
    wrapped = (fractional - np.floor(fractional)) @ h_bohr.T
    assert np.abs(wrapped - shifted).max() > 30  # really cut
    compute = make_compute(CalmPotential(), numbers, periodic=True)
    compute(h_bohr[None], shifted[None])  # the reference: whole
    compute(h_bohr[None], wrapped[None])  # cut bonds are whole through their image
    gas = make_compute(CalmPotential(), numbers)  # without the cell, the cut bonds look broken
    gas(h_bohr[None], shifted[None])
    with pytest.raises(ModelBreakdown, match="more bonds over the limit"):
        gas(h_bohr[None], wrapped[None])
    _, _, broken = stretched_c_h(numbers, shifted, 2.0)
    with pytest.raises(ModelBreakdown, match="--max-bond-stretch"):
        compute(h_bohr[None], broken[None])


def test_the_bond_stretch_option_reaches_every_driver_path(tmp_path):
    """so3k serve / so3k run flags -> ServeOptions (socket drivers) and the in-process PES config."""
    from types import SimpleNamespace

    from conftest import REPO
    from so3k_driver.cli.ipi_commands import run_options
    from so3k_driver.cli.main import build_parser
    from so3k_driver.ipi import ipi_xml
    from so3k_driver.ipi.direct_pes import DRIVER_OPTIONS
    from so3k_driver.ipi.run_setup import RunOptions, _write_pes_config
    from so3k_driver.ipi.supervisor import _Run
    from so3k_driver.ipi.serving import ServeOptions

    nvt = str(REPO / "ipi_inputs" / "nvt.xml")
    parser = build_parser()
    assert parser.parse_args(["run", nvt]).max_bond_stretch == 1.6
    args = parser.parse_args(["run", nvt, "--model", "ala3-xtb", "--max-bond-stretch", "2.5"])
    options = run_options(args)
    assert options.max_bond_stretch == 2.5
    serve = parser.parse_args(["serve", "ala3-xtb", "--unix", "x", "--structure", nvt, "--max-bond-stretch", "0"])
    assert (serve.max_bond_stretch, ServeOptions(model="ala3-xtb", structure=nvt, unix="x").max_bond_stretch) == (0, 1.6)
    [socket] = ipi_xml.socket_settings(ipi_xml.load(nvt).getroot())
    piece = SimpleNamespace(sockets=[socket], outputs=None, ipi_command=["i-pi", nvt], per_step={socket.name: 1},
                            periodic=False, direct=[])
    assert _Run(options, str(tmp_path), piece, print, None).serve_options(socket).max_bond_stretch == 2.5
    config = json.loads(open(_write_pes_config(options, str(tmp_path), socket, 1, nvt, False)).read())
    assert config["max_bond_stretch"] == 2.5 and "max_bond_stretch" in DRIVER_OPTIONS
    for make in (lambda: RunOptions(input=nvt, model="ala3-xtb", max_bond_stretch=-0.5),
                 lambda: ServeOptions(model="ala3-xtb", structure=nvt, unix="x", max_bond_stretch=-0.5)):
        with pytest.raises(UserError, match="max_bond_stretch must be >= 0"):
            make()


def test_every_shipped_input_is_well_formed_xml():
    """i-PI parses inputs with a strict XML parser (e.g. '--' is illegal inside comments)."""
    import xml.etree.ElementTree as ET
    from pathlib import Path

    inputs = sorted((Path(__file__).resolve().parents[2] / "ipi_inputs").glob("*.xml"))
    assert len(inputs) >= 5
    for path in inputs:
        ET.parse(path)


def test_error_lines_written_by_drivers_are_read_back_by_the_runner():
    """Both backends' error formats (socket driver log, direct-backend soft exit) parse back to the
    exception class and the whole message, even when the message holds colons and parentheses."""
    from so3k_driver.errors import ModelBreakdown
    from so3k_driver.ipi.compute import (DIRECT_ERROR_LINE, DRIVER_ERROR_LINE, DRIVER_LOG_PREFIX,
                                         direct_error_message, driver_error_message)

    error = ModelBreakdown("bond C59–C61 (1-based): 2.60 Å > 2.43 Å")
    socket_line = DRIVER_LOG_PREFIX + driver_error_message(error)
    assert DRIVER_ERROR_LINE.match(socket_line).groups() == ("ModelBreakdown", str(error))
    ipi_log = f" @SOFTEXIT: Kill signal received: {direct_error_message(error)}\n"
    assert DIRECT_ERROR_LINE.search(ipi_log).groups() == ("ModelBreakdown", str(error))
    assert DRIVER_ERROR_LINE.match(direct_error_message(error)) is None
