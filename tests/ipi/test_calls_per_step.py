"""Model calls per MD step: the driver counts them, and waits briefly for the rest of a step on idle
connections (scripted fake i-PI, no model)."""

import json
import socket
import threading
import time

import numpy as np
import pytest

from so3k_driver.ipi import protocol as P
from so3k_driver.ipi.server import FRUITLESS_WAITS, CallCounter, serve
from so3k_driver.ipi.transport import Connection
from test_ipi_protocol import FakeIPI, fake_compute


def start(count, counter, calls):
    pairs = [socket.socketpair() for _ in range(count)]
    outcome = {}

    def target():
        outcome["answered"] = serve([Connection(p[1], f"pair{i}") for i, p in enumerate(pairs)], fake_compute(calls),
                                    counter=counter)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    fakes = [FakeIPI(p[0]) for p in pairs]
    return thread, outcome, fakes


def handshake(fake, init=" "):
    assert fake.status() == "NEEDINIT"
    fake.init(init)
    assert fake.status() == "READY"


def send_single(fake, value):
    positions = np.full((3, 3), float(value))
    fake.send(P.header(P.POSDATA), np.eye(3).tobytes(), np.eye(3).tobytes(), P.int32(3), positions.tobytes(),
              P.header(P.GETFORCE))


def read_single(fake):
    assert fake.recv(12) == P.header(P.FORCEREADY)
    energy = np.frombuffer(fake.recv(8), np.float64)[0]
    fake.recv(4 + 72 + 72)
    fake.recv(int(np.frombuffer(fake.recv(4), np.int32)[0]))
    return energy


def finish(thread, fakes):
    for fake in fakes:
        fake.send(P.header(P.EXIT))
    thread.join(5)
    assert not thread.is_alive()


def test_padding_is_not_counted_as_structures_of_the_step():
    counter, calls = CallCounter(per_step=3), []
    thread, outcome, (ipi,) = start(1, counter, calls)
    handshake(ipi, " batch_size:4")
    rng = np.random.default_rng(1)
    for _ in range(5):  # 5 steps of 3 replicas, each padded to the batch size 4 by i-PI
        positions = rng.normal(size=(4, 5, 3))
        positions[3] = positions[2]
        ipi.batched_request(np.repeat(np.eye(3)[None] * 20, 4, axis=0), positions)
        assert ipi.status() == "READY"
    finish(thread, [ipi])
    assert (counter.calls, counter.slots, counter.distinct) == (5, 20, 15)
    assert counter.calls_per_step == 1.0 and counter.waits == 0  # one connection: nothing to wait for


def exchange_step(fakes, delay_s):
    """Both requests of a step, the second delay_s after the first; the two energies back."""
    send_single(fakes[0], 1.0)
    time.sleep(delay_s)
    send_single(fakes[1], 2.0)
    return [read_single(fake) for fake in fakes]


def test_the_driver_waits_for_the_rest_of_a_step_and_evaluates_it_in_one_call():
    runs = {}
    for label, counter in [("waits", CallCounter(per_step=2, gather_timeout_s=1.0)), ("unknown", CallCounter())]:
        calls = []
        thread, outcome, fakes = start(2, counter, calls)
        for fake in fakes:
            handshake(fake)
        energies = [exchange_step(fakes, delay_s=0.1) for _ in range(3)]
        finish(thread, fakes)
        assert energies == [[3.0, 6.0]] * 3 and outcome["answered"] == 6
        runs[label] = counter
    assert runs["waits"].calls == 3 and runs["waits"].fruitful_waits == 3  # one call per step
    assert runs["unknown"].calls == 6  # no step size known: each request goes out as it comes
    assert runs["unknown"].calls_per_step is None


def test_waiting_stops_when_the_rest_of_a_step_never_comes_before_an_answer():
    """i-PI sends a forcefield's next requests only once all sent ones are answered: when a step is
    dispatched in two rounds, waiting cannot help and the driver gives it up."""
    counter, calls = CallCounter(per_step=2, gather_timeout_s=0.02), []
    thread, outcome, fakes = start(2, counter, calls)
    for fake in fakes:
        handshake(fake)
    for step in range(FRUITLESS_WAITS + 5):
        for fake in fakes:  # one request at a time, each answered before the next is sent
            send_single(fake, 1.0)
            read_single(fake)
    finish(thread, fakes)
    assert counter.waits == FRUITLESS_WAITS and counter.fruitful_waits == 0
    assert counter.calls == 2 * (FRUITLESS_WAITS + 5) and counter.calls_per_step == 2.0


def test_the_driver_splits_a_steps_time_into_model_waiting_for_ipi_and_its_own_work():
    """Steady-state timing (so3k_driver_calls.json): a model call of 30 ms and an i-PI that takes 60 ms
    between answer and next request read as a step of ~90 ms, of which ~30 model and ~60 waiting.
    The first UNTIMED_CALLS calls (compilation, warm-up) are not timed, nor is a later call that
    compiled a new shape (here one that takes 0.4 s more and raises the compilation count)."""
    from so3k_driver.ipi.server import UNTIMED_CALLS

    model_s, ipi_s, steps, compile_s = 0.03, 0.06, UNTIMED_CALLS + 6, 0.4
    compilations = [1]
    counter, calls = CallCounter(per_step=1, compiles=lambda: compilations[0]), []
    slow = fake_compute(calls)

    def compute(cells, positions, pad_to=None):
        time.sleep(model_s)
        if len(calls) == UNTIMED_CALLS + 2:
            time.sleep(compile_s)
            compilations[0] += 1
        return slow(cells, positions, pad_to)

    pair = socket.socketpair()
    thread = threading.Thread(target=serve, args=([Connection(pair[1], "pair")], compute), kwargs={"counter": counter},
                              daemon=True)
    thread.start()
    ipi = FakeIPI(pair[0])
    handshake(ipi)
    for step in range(steps):
        time.sleep(ipi_s)
        send_single(ipi, step)
        read_single(ipi)
    finish(thread, [ipi])
    timing = counter.summary()
    assert counter.timed_calls == steps - UNTIMED_CALLS - 1 and counter.compiling_calls == 1
    assert compile_s + model_s <= timing["compiling_s"] < compile_s + model_s + 0.1
    assert "compiles" not in timing and json.dumps(timing)
    # Upper margins (25 ms) absorb a loaded machine's late wake-ups from sleep; they still tell the
    # model's 30 ms from i-PI's 60 ms and from their 90 ms sum.
    assert 1e3 * model_s <= timing["model_ms_per_call"] < 1e3 * model_s + 25
    assert 1e3 * ipi_s - 5 <= timing["idle_ms_per_call"] < 1e3 * ipi_s + 25
    assert timing["ms_per_step"] == pytest.approx(timing["ms_per_call"])  # one structure per step, one call each
    assert timing["ms_per_call"] == pytest.approx(timing["model_ms_per_call"] + timing["idle_ms_per_call"]
                                                  + timing["own_ms_per_call"])
    assert 1e3 * (model_s + ipi_s) - 5 <= timing["ms_per_call"] < 1e3 * (model_s + ipi_s) + 40
    assert CallCounter(per_step=1).timing()["ms_per_step"] is None  # nothing timed yet


def test_structures_per_step_are_read_from_the_input(tmp_path):
    """Beads × systems using a forcefield: REMD templates count once per instance, a contracted
    <force nbeads> counts its own beads, a forcefield with weight 0 is never asked."""
    from conftest import REPO
    from so3k_driver.ipi import ipi_xml

    def per_step(path, name="so3k"):
        return ipi_xml.structures_per_evaluation(ipi_xml.load(str(path)).getroot(), name)

    inputs = REPO / "ipi_inputs"
    assert [per_step(inputs / f) for f in ("nvt.xml", "pimd.xml", "remd.xml", "remd_metad.xml")] == [1, 8, 4, 4]
    text = (inputs / "pimd.xml").read_text().replace("<force forcefield='so3k'", "<force forcefield='so3k' nbeads='2'")
    (tmp_path / "contracted.xml").write_text(text.replace("</forces>", "<force forcefield='off' weight='0'/></forces>"))
    assert per_step(tmp_path / "contracted.xml") == 2 and per_step(tmp_path / "contracted.xml", "off") is None


def test_waiting_after_the_last_call_stays_out_of_the_timed_span():
    """Each step: 10 ms waiting for i-PI, a 30 ms call, 2 ms of the driver's own work. The wait for i-PI's
    exit after the last call (here 500 ms) falls after the span ends and must not count as waiting:
    model + waiting + own work add up to the time per call (a loaded machine made it 0.3 ms over)."""
    from so3k_driver.ipi.server import UNTIMED_CALLS

    counter = CallCounter(per_step=1)
    request = type("Request", (), {"positions": np.zeros((1, 3, 3)), "padding": 0})()
    now = 0.0
    for _ in range(UNTIMED_CALLS + 5):
        counter.record_idle(0.010)
        now += 0.010
        counter.record_call([request], started=now, finished=now + 0.030)
        now += 0.032
    counter.record_idle(0.500)
    timing = counter.timing()
    assert timing["idle_ms_per_call"] == pytest.approx(10.0)
    assert timing["model_ms_per_call"] == pytest.approx(30.0)
    assert timing["own_ms_per_call"] == pytest.approx(2.0)
    assert timing["ms_per_call"] == pytest.approx(42.0)
    assert "pending_idle_s" not in counter.summary()


def test_the_call_counts_file_is_whole_or_the_previous_one(tmp_path, monkeypatch):
    """i-PI writes the counts at its exit from two threads and may end the process mid-way (a 2-hour REMD
    piece left an empty so3k_driver_calls.json): a write that does not finish leaves the last whole file."""
    path = tmp_path / "so3k_driver_calls.json"
    counter = CallCounter(per_step=8)
    counter.write_json(str(path))
    first = json.loads(path.read_text())
    assert first["per_step"] == 8 and first["calls"] == 0

    def interrupted(record, handle, **_):
        handle.write('{\n "per_step": 8,')  # part of the text, then the process is stopped
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", interrupted)
    with pytest.raises(KeyboardInterrupt):
        counter.write_json(str(path))
    assert json.loads(path.read_text()) == first
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left beside it
