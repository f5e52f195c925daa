"""Heavier hydrogens in i-PI inputs (``so3k run --hydrogen-mass``): the <masses> element written,
what is refused, and a real NVE run showing what heavy hydrogens buy (slow)."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conftest import REPO
from so3k_driver.errors import IpiInputError
from so3k_driver.ipi import ipi_xml
from so3k_driver.ipi.structures import read_numbers

INPUTS = REPO / "ipi_inputs"


def masses_of(initialize):
    return np.array([float(x) for x in initialize.find("masses").text.strip().strip("[]").split(",")])


def test_every_hydrogen_gets_the_mass_and_the_other_atoms_keep_theirs():
    root = ipi_xml.load(str(INPUTS / "nvt.xml")).getroot()
    ipi_xml.apply_overrides(root, input_dir=str(INPUTS), hydrogen_mass=4.0)
    initialize = root.find("system/initialize")
    # After <file> (the atom count is known) and before <velocities> (thermal momenta use the masses).
    assert [child.tag for child in initialize] == ["file", "masses", "velocities"]
    assert initialize.find("masses").get("units") == "dalton"
    numbers = read_numbers(str(INPUTS / "ala3.xyz"))
    masses = masses_of(initialize)
    assert len(masses) == len(numbers) == 42
    assert np.all(masses[numbers == 1] == 4.0) and (numbers == 1).sum() == 22
    for z, mass in [(6, 12.011), (7, 14.007), (8, 15.999)]:  # standard atomic weights, amu
        np.testing.assert_allclose(masses[numbers == z], mass)


def test_a_remd_template_gets_masses_in_its_initialize(tmp_path):
    root = ipi_xml.load(str(INPUTS / "remd_metad.xml")).getroot()
    ipi_xml.apply_overrides(root, input_dir=str(INPUTS), hydrogen_mass=3.0)
    initializers = list(root.iter("initialize"))
    assert len(initializers) == 1 and root.find("system_template/template/system/initialize") is initializers[0]
    numbers = read_numbers(str(INPUTS / "ala15_ext.xyz"))
    assert np.all(masses_of(initializers[0])[numbers == 1] == 3.0)


def test_checkpoints_inputs_with_masses_and_bad_masses_are_refused(tmp_path):
    checkpoint = ET.fromstring("<simulation><system><beads natoms='2' nbeads='1'/></system></simulation>")
    with pytest.raises(IpiInputError, match="checkpoint keeps the masses"):
        ipi_xml.set_hydrogen_masses(checkpoint, 4.0)
    root = ipi_xml.load(str(INPUTS / "nvt.xml")).getroot()
    ipi_xml.apply_overrides(root, input_dir=str(INPUTS), hydrogen_mass=4.0)
    with pytest.raises(IpiInputError, match="already sets <masses>"):
        ipi_xml.set_hydrogen_masses(root, 2.0)
    with pytest.raises(IpiInputError, match="-1"):
        ipi_xml.set_hydrogen_masses(ipi_xml.load(str(INPUTS / "nvt.xml")).getroot(), -1.0)


def test_so3k_run_refuses_hydrogen_masses_for_a_checkpoint_in_one_line(tmp_path):
    checkpoint = tmp_path / "RESTART"
    checkpoint.write_text("<simulation><step> 3 </step><system><beads natoms='1' nbeads='1'/></system></simulation>")
    result = subprocess.run([sys.executable, "-m", "so3k_driver.cli", "run", str(checkpoint), "--model", "default",
                             "--hydrogen-mass", "4", "--workdir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "checkpoint keeps the masses" in lines[0]
