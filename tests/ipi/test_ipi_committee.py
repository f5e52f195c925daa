"""i-PI's <ffcommittee parse_json='true'> reads the committee our driver serves (a real i-PI run)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import REPO, tiny_model_config

from so3k_driver.evaluation.potential import Potential
from so3k_driver.model.forces import initial_parameters

pytest.importorskip("ipi", reason="i-PI is not installed (pip install ipi)")
CONFIG = tiny_model_config()


@pytest.fixture(scope="module")
def members():
    return [initial_parameters(CONFIG, seed) for seed in (0, 1, 2)]


def test_ipi_ffcommittee_reads_the_committee(tmp_path, members):
    """A real i-PI with <ffcommittee><parse_json>true</parse_json> around our socket: it reports the members'
    energy spread as committee_uncertainty, equal to ours (hartree)."""
    from so3k_driver.io.model_files import save_committee, save_model
    from so3k_driver.ipi.executables import ipi_executable
    from so3k_driver.units import EV_IN_HARTREE

    paths = [save_model(tmp_path / f"m{i}.so3k", CONFIG, p) for i, p in enumerate(members)]
    model = save_committee(tmp_path / "committee.so3k", [str(p) for p in paths])
    address = f"so3k-committee-{os.getpid()}"
    (tmp_path / "ala3.xyz").write_text((REPO / "ipi_inputs" / "ala3.xyz").read_text())
    (tmp_path / "input.xml").write_text(f"""<simulation verbosity='low'>
  <output prefix='c'>
    <properties stride='1' filename='out'> [ step, potential{{electronvolt}} ] </properties>
    <trajectory filename='unc' stride='1' extra_type='committee_uncertainty'> extras </trajectory>
  </output>
  <total_steps> 3 </total_steps>
  <ffcommittee name='committee'>
    <parse_json> true </parse_json>
    <ffsocket name='so3k' mode='unix' pbc='false'><address> {address} </address><latency> 1e-4 </latency></ffsocket>
  </ffcommittee>
  <system>
    <initialize nbeads='1'><file mode='xyz'> ala3.xyz </file><velocities mode='thermal' units='kelvin'> 300 </velocities></initialize>
    <forces><force forcefield='committee'/></forces>
    <ensemble><temperature units='kelvin'> 300 </temperature></ensemble>
    <motion mode='dynamics'><dynamics mode='nve'><timestep units='femtosecond'> 0.5 </timestep></dynamics></motion>
  </system>
</simulation>
""")
    ipi = subprocess.Popen([str(ipi_executable()), "input.xml"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(f"/tmp/ipi_{address}") and time.monotonic() < deadline:
            time.sleep(0.1)
        driver = subprocess.run([sys.executable, "-m", "so3k_driver.cli", "serve", str(model), "--unix", address,
                                 "--structure", str(tmp_path / "ala3.xyz"), "--dtype", "float64"],
                                capture_output=True, text=True, timeout=150)
        assert driver.returncode == 0, driver.stderr
        ipi.wait(60)
    finally:
        if ipi.poll() is None:
            ipi.kill()
    # one "#EXTRAS(committee_uncertainty)# Step: k" header and one value per step
    spread = [float(line) for line in (tmp_path / "c.unc_0").read_text().splitlines() if not line.lstrip().startswith("#")]
    assert len(spread) == 4
    import ase.io

    first = ase.io.read(tmp_path / "ala3.xyz")
    ours = Potential.load(str(model), dtype="float64").evaluate(first.numbers, first.positions)
    assert spread[0] == pytest.approx(ours.extras["energy_uncertainty"][0] * EV_IN_HARTREE, rel=1e-4)
