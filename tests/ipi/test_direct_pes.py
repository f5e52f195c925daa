"""The in-process PES of the direct backend, called as i-PI's <ffdirect> calls it (no i-PI run)."""

import json
from pathlib import Path

import ase.io
import numpy as np
import pytest

from so3k_driver.units import BOHR_IN_ANGSTROM

REPO = Path(__file__).resolve().parents[2]


def test_call_counts_are_written_during_the_run_not_only_at_exit(tmp_path, monkeypatch):
    """i-PI may end without finishing its exit functions; the counts are then written every STATS_EVERY_S."""
    from so3k_driver.ipi import direct_pes

    structure = REPO / "ipi_inputs" / "ala3.xyz"
    config = tmp_path / "pes.json"
    config.write_text(json.dumps({"model": "ala3-xtb", "template": str(structure), "batch_size": 1,
                                  "structures_per_step": 1, "stats_file": "calls.json"}))
    pes = direct_pes.SO3kDirectPES(str(config))
    positions = ase.io.read(structure).positions / BOHR_IN_ANGSTROM
    cell = np.eye(3) * 100.0 / BOHR_IN_ANGSTROM
    monkeypatch.setattr(direct_pes, "STATS_EVERY_S", 3600.0)
    energy, forces, _, _ = pes.compute(cell, positions)
    assert np.isfinite(energy) and np.shape(forces) in ((positions.size,), positions.shape)
    assert not (tmp_path / "calls.json").exists()  # the relative stats path is beside the configuration
    monkeypatch.setattr(direct_pes, "STATS_EVERY_S", 0.0)
    pes.compute(cell, positions)
    counts = json.loads((tmp_path / "calls.json").read_text())
    assert counts["calls"] == 2 and counts["per_step"] == 1


@pytest.fixture(autouse=True)
def _no_exit_writes():
    """The PES registers its writer with i-PI's soft exit and atexit; a test's tmp_path is gone by then."""
    import atexit

    from ipi.utils.softexit import softexit

    functions = list(softexit.flist)
    yield
    for entry in softexit.flist[len(functions):]:
        atexit.unregister(entry[0])
    softexit.flist[:] = functions


@pytest.fixture
def _python_default_switch_interval():
    import sys

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("_python_default_switch_interval")
def test_gil_switch_interval_is_shortened_only_for_several_systems_at_python_default(tmp_path):
    """i-PI's threads for several systems share the GIL with the PES thread: it asks for 0.5 ms hand-overs."""
    import sys

    from so3k_driver.ipi import direct_pes

    def build(batch_size: int) -> None:
        config = tmp_path / f"pes_{batch_size}.json"
        config.write_text(json.dumps({"model": "ala3-xtb", "template": str(REPO / "ipi_inputs" / "ala3.xyz"),
                                      "batch_size": batch_size}))
        direct_pes.SO3kDirectPES(str(config))

    build(1)
    assert sys.getswitchinterval() == pytest.approx(0.005)  # one system: nothing to hand over
    build(8)
    assert sys.getswitchinterval() == pytest.approx(direct_pes.SEVERAL_SYSTEMS_SWITCH_INTERVAL_S)
    sys.setswitchinterval(0.002)  # whoever started i-PI chose an interval: it is kept
    build(8)
    assert sys.getswitchinterval() == pytest.approx(0.002)
