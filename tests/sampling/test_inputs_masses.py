"""Studies with heavier hydrogens: the setting, the i-PI input it writes, and i-PI running it."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest

from so3k_driver.errors import UserError
from so3k_driver.sampling import inputs as study_inputs
from so3k_driver.sampling.plumed_inputs import bundled_structure
from so3k_driver.sampling.settings import MetadSettings, StudySettings

SO3K = [sys.executable, "-m", "so3k_driver.cli"]
NO_METAD = MetadSettings(cv="none")


def settings(**changes):
    fields = dict(structure="mol.xyz", model="ala3-xtb", temperatures=(300.0, 350.0), steps=4, metad=NO_METAD)
    return StudySettings(**{**fields, **changes})


def test_hydrogen_mass_is_checked_and_saved_in_study_json(tmp_path):
    assert settings().hydrogen_mass is None  # natural masses by default
    for bad in (0.0, -4.0, float("nan"), "4"):
        with pytest.raises(UserError, match="hydrogen mass"):
            settings(hydrogen_mass=bad)
    heavy = settings(hydrogen_mass=4.0)
    heavy.save(tmp_path)
    assert StudySettings.load(tmp_path) == heavy and '"hydrogen_mass": "amu"' in (tmp_path / "study.json").read_text()


@pytest.mark.parametrize("temperatures", [(300.0,), (300.0, 350.0)])
def test_study_input_lists_one_mass_per_atom_only_when_asked(temperatures):
    numbers = np.array([6, 1, 1, 1, 8])
    forcefield = study_inputs.socket_forcefield("x")
    assert "<masses" not in study_inputs.study_xml(settings(temperatures=temperatures), forcefield, None)
    with pytest.raises(ValueError, match="atomic numbers"):
        study_inputs.study_xml(settings(temperatures=temperatures, hydrogen_mass=4.0), forcefield, None)
    text = study_inputs.study_xml(settings(temperatures=temperatures, hydrogen_mass=4.0), forcefield, None,
                                  numbers=numbers)
    masses = re.search(r"<masses mode='manual' units='dalton'> \[ (.*) \] </masses>", text).group(1)
    assert [float(m) for m in masses.split(",")] == [12.011, 4.0, 4.0, 4.0, 15.999]
    assert text.index("<file") < text.index("<masses") < text.index("<velocities")


def test_ipi_runs_a_heavy_hydrogen_remd_study_with_those_masses(tmp_path):
    """so3k sample init --hydrogen-mass 4, then i-PI on its input.xml (two 2 fs REMD steps; i-PI's
    dummy driver, the masses do not depend on the model): the checkpoint holds 4 amu per H."""
    pytest.importorskip("ipi", reason="i-PI is not installed")
    from ipi.utils.units import Constants  # i-PI's dalton in electron masses

    folder = tmp_path / "study"
    structure = bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    init = subprocess.run(SO3K + ["sample", "init", str(structure), "--model", "ala3-xtb", "--temperatures", "300,350",
                                  "--steps", "2", "--timestep", "2", "--metad", "none", "--output-stride", "1",
                                  "--hydrogen-mass", "4", "--out", str(folder)], capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    assert "hydrogens 4 amu" in init.stdout
    address = f"so3k-test-{os.getpid()}-masses"
    xml = folder / "input.xml"
    xml.write_text(xml.read_text().replace("so3k-study", address))
    bin_dir = Path(sys.executable).parent
    ipi = subprocess.Popen([str(bin_dir / "i-pi"), str(xml)], cwd=folder, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(f"/tmp/ipi_{address}"):
            assert time.monotonic() < deadline and ipi.poll() is None, "i-PI did not open its socket"
            time.sleep(0.1)
        subprocess.run([str(bin_dir / "i-pi-py_driver"), "-u", "-a", address, "-m", "dummy"], capture_output=True,
                       timeout=60, check=True)
        assert ipi.wait(timeout=30) == 0
    finally:
        if ipi.poll() is None:
            ipi.kill()
    numbers = ase.io.read(structure).numbers
    blocks = re.findall(r"<m shape='\(42\)'>\s*\[(.*?)\]", (folder / "RESTART").read_text(), re.S)
    assert len(blocks) == 2  # one system per temperature
    for block in blocks:
        masses = np.array([float(x) for x in block.split(",")]) / Constants.amu
        np.testing.assert_allclose(masses[numbers == 1], 4.0, rtol=1e-6)
        np.testing.assert_allclose(masses[numbers == 6], 12.011, rtol=1e-6)
