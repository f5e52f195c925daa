"""so3k run serves every <ffsocket> of an input, each with its own model, options and drivers."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SO3KRATES_RANDOM
from so3k_driver.errors import IpiInputError, UserError
from so3k_driver.ipi import ipi_xml

INPUTS = REPO / "ipi_inputs"
SO3K = [sys.executable, "-m", "so3k_driver.cli"]

# Multiple time stepping: 'slow' once per 0.5 fs step (outer level), 'fast' twice (inner level,
# weight 0.5). i-PI's potential is sum(weight * sum(mts_weights) * V) = V_slow + 0.5 V_fast.
MTS_INPUT = """<simulation verbosity='low' safe_stride='10'>
  <output prefix='mts'>
    <properties stride='1' filename='out'> [ step, potential{electronvolt} ] </properties>
    <trajectory filename='pos' stride='1' format='xyz'> positions{angstrom} </trajectory>
  </output>
  <total_steps> 4 </total_steps>
  <prng><seed> 31415 </seed></prng>
  <ffsocket name='slow' mode='unix' pbc='false'> <address> mts-slow </address> <latency> 1e-4 </latency> </ffsocket>
  <ffsocket name='fast' mode='unix' pbc='false'> <address> mts-fast </address> <latency> 1e-4 </latency> </ffsocket>
  <system>
    <initialize nbeads='1'>
      <file mode='xyz'> ala3.xyz </file>
      <velocities mode='thermal' units='kelvin'> 300 </velocities>
    </initialize>
    <forces>
      <force forcefield='slow'> <mts_weights> [ 1, 0 ] </mts_weights> </force>
      <force forcefield='fast' weight='0.5'> <mts_weights> [ 0, 1 ] </mts_weights> </force>
    </forces>
    <ensemble> <temperature units='kelvin'> 300 </temperature> </ensemble>
    <motion mode='dynamics'>
      <dynamics mode='nve'>
        <timestep units='femtosecond'> 0.5 </timestep>
        <nmts> [ 1, 2 ] </nmts>
      </dynamics>
    </motion>
  </system>
</simulation>
"""


def mts_input(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ala3.xyz").write_text((INPUTS / "ala3.xyz").read_text())
    path = folder / "mts.xml"
    path.write_text(MTS_INPUT)
    return path


def test_every_ffsocket_is_read_and_each_gets_its_own_address(tmp_path):
    root = ipi_xml.load(str(mts_input(tmp_path))).getroot()
    sockets = ipi_xml.socket_settings(root)
    assert [(s.name, s.address) for s in sockets] == [("slow", "mts-slow"), ("fast", "mts-fast")]
    ipi_xml.apply_overrides(root, input_dir=str(tmp_path), address="run7")
    assert [s.unix_path for s in ipi_xml.socket_settings(root)] == ["/tmp/ipi_run7-slow", "/tmp/ipi_run7-fast"]
    for ffsocket in root.findall("ffsocket"):
        ffsocket.find("address").text = " same "
    with pytest.raises(IpiInputError, match="each needs its own address"):
        ipi_xml.socket_settings(root)


def test_model_and_driver_option_flags_map_to_forcefields():
    from so3k_driver.cli.ipi_commands import forcefield_driver_options, forcefield_models

    assert forcefield_models(["ala3-xtb"]) == ("ala3-xtb", {})
    assert forcefield_models(["fast=ala3-xtb", "slow=so3lr:/m", "mlff:/x"]) == ("mlff:/x", {"fast": "ala3-xtb",
                                                                                        "slow": "so3lr:/m"})
    with pytest.raises(UserError, match="two models"):
        forcefield_models(["ala3-xtb", "so3lr:/m"])
    with pytest.raises(UserError, match="'fast' given twice"):
        forcefield_models(["fast=ala3-xtb", "fast=so3lr:/m"])
    common, own = forcefield_driver_options(["--lr-cutoff=10", "slow:--dtype=float64", "slow:--total-charge=1"])
    assert common == {"lr_cutoff": 10.0} and own == {"slow": {"dtype": "float64", "total_charge": 1.0}}
    with pytest.raises(UserError, match="--dtype"):
        forcefield_driver_options(["--dtype=float64"])  # for every driver: that is so3k run --dtype


@pytest.mark.parametrize("models, model, message", [
    ({"slow": "ala3-xtb"}, None, "fast need"), ({"medium": "ala3-xtb"}, "ala3-xtb", "medium"), ({}, None, "need")])
def test_an_unserved_or_unknown_forcefield_stops_before_ipi_starts(tmp_path, models, model, message):
    from so3k_driver.ipi.runner import RunOptions, run_simulation

    options = RunOptions(input=str(mts_input(tmp_path)), model=model, models=models, workdir=str(tmp_path / "run"))
    with pytest.raises(UserError, match=message):
        run_simulation(options)
    assert not (tmp_path / "run" / "ipi.log").exists()


def read_frames(path, natoms):
    lines = Path(path).read_text().splitlines()
    return np.array([[[float(x) for x in line.split()[1:4]] for line in lines[start + 2:start + 2 + natoms]]
                     for start in range(0, len(lines), natoms + 2)])


@pytest.mark.shared
@pytest.mark.slow  # two drivers and two models compiled: ~1-2 min on 2 busy cores
def test_multiple_time_stepping_with_two_models_gives_the_weighted_sum_of_both(tmp_path):
    """Each ffsocket served by its own driver and model: i-PI's potential equals V_slow + 0.5 V_fast
    evaluated here on the same frames; the fast force is asked for twice per step."""
    pytest.importorskip("ipi", reason="i-PI is not installed")
    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.ipi.structures import read_numbers

    xml = mts_input(tmp_path / "inputs")
    workdir = tmp_path / "run"
    result = subprocess.run(SO3K + ["run", str(xml), "--model", "slow=ala3-xtb", "--model", f"fast={SO3KRATES_RANDOM}",
                                    "--driver-option=fast:--dtype=float64", "--workdir", str(workdir), "--quiet",
                                    "--address", f"so3k-test-{os.getpid()}-mts"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    options = {name: (workdir / f"so3k_driver_{name}.json").read_text() for name in ("slow", "fast")}
    assert '"model": "ala3-xtb"' in options["slow"] and '"dtype": null' in options["slow"]
    assert SO3KRATES_RANDOM in options["fast"] and '"dtype": "float64"' in options["fast"]
    numbers = read_numbers(str(INPUTS / "ala3.xyz"))
    frames = read_frames(workdir / "mts.pos_0.xyz", len(numbers))
    potential = np.loadtxt(workdir / "mts.out", ndmin=2)[:, 1]  # eV
    assert len(frames) == len(potential) == 5
    slow = Potential.load("ala3-xtb").evaluate(np.broadcast_to(numbers, (5, len(numbers))), frames).energy
    fast = Potential.load(SO3KRATES_RANDOM, dtype="float64").evaluate(np.broadcast_to(numbers, (5, len(numbers))),
                                                                      frames).energy
    assert np.ptp(frames[:, :, 0]) > 0 and np.all(np.abs(slow - fast) > 100)  # moving atoms, two different models
    np.testing.assert_allclose(potential, slow + 0.5 * fast, atol=2e-3)  # float32 model at -1767 eV
    answered = {}
    for name in ("slow", "fast"):
        log = (workdir / f"so3k_driver_{name}_0.log").read_text()
        answered[name] = int(re.search(r"done: (\d+) requests", log).group(1))
    assert answered == {"slow": 1 + 4, "fast": 1 + 2 * 4}  # the start, then once (outer) or twice (inner) per step
