"""Heavier hydrogens in i-PI inputs (``so3k run --hydrogen-mass``): the <masses> element written,
what is refused, and a real NVE run showing what heavy hydrogens buy (slow)."""

import os
import re
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


def test_a_template_whose_systems_start_from_their_own_files_is_read_through_its_first_instance(tmp_path):
    """i-PI fills a <template>'s labels per <instance> (init_IDX.xyz -> init_0.xyz, init_1.xyz): the elements
    (for the driver and for hydrogen masses) come from the first instance's file, as i-PI would read it."""
    (tmp_path / "init_0.xyz").write_text((INPUTS / "ala3.xyz").read_text())  # only the first instance's file
    text = ("<simulation><system_template><labels> [ 'IDX', TEMP ] </labels>"
            "<instance> [ 0, 300 ] </instance><instance> [ 1, 350 ] </instance><template><system>"
            "<initialize nbeads='1'><file mode='xyz'> init_IDX.xyz </file></initialize>"
            "</system></template></system_template></simulation>")
    (tmp_path / "input.xml").write_text(text)
    assert len(read_numbers(str(tmp_path / "input.xml"))) == 42
    root = ipi_xml.load(str(tmp_path / "input.xml")).getroot()
    ipi_xml.apply_overrides(root, input_dir=str(tmp_path), hydrogen_mass=4.0)
    masses = masses_of(root.find("system_template/template/system/initialize"))
    assert len(masses) == 42 and (masses == 4.0).sum() == 22
    template = root.find("system_template")
    assert ipi_xml.first_instance_text(template, "T-IDX at TEMP K") == "T-0 at 300 K"
    assert ipi_xml.first_instance_text(template, "no label here") == "no label here"
    assert ipi_xml.first_instance_text(None, "TEMP outside a template") == "TEMP outside a template"
    template.find("instance").text = " [ 0 ] "
    with pytest.raises(IpiInputError, match=r"2 labels \['IDX', 'TEMP'\] but its first <instance> has 1 values"):
        ipi_xml.first_instance_text(template, "init_IDX.xyz")


def test_a_file_outside_the_template_keeps_its_label_like_text(tmp_path):
    root = ET.fromstring("<simulation><system><initialize><file> /data/TEMP/x.xyz </file></initialize></system>"
                         "<system_template><labels> [ TEMP ] </labels><instance> [ 300 ] </instance><template>"
                         "<system><initialize><file> TEMP.xyz </file></initialize></system></template>"
                         "</system_template></simulation>")
    plain, templated = root.iter("file")
    assert ipi_xml.file_of_first_instance(root, plain) == "/data/TEMP/x.xyz"
    assert ipi_xml.file_of_first_instance(root, templated) == "300.xyz"


def test_a_run_folder_holding_a_template_label_is_refused_as_i_pi_would_rewrite_it(tmp_path):
    text = ("<simulation><system_template><labels> [ IDX, TEMP ] </labels><instance> [ 0, 300 ] </instance>"
            "<template><system><initialize nbeads='1'><file mode='xyz'> init_IDX.xyz </file></initialize>"
            "</system></template></system_template></simulation>")
    root = ET.fromstring(text)
    ipi_xml.apply_overrides(root, input_dir="/scratch/run_1")  # the input's own label in the name is meant
    assert root.find(".//file").text.strip() == "/scratch/run_1/init_IDX.xyz"
    with pytest.raises(IpiInputError, match="/scratch/TEMP/run contains the <system_template> label 'TEMP'"):
        ipi_xml.apply_overrides(ET.fromstring(text), input_dir="/scratch/TEMP/run")
    with pytest.raises(IpiInputError, match="label 'IDX'"):
        ipi_xml.apply_overrides(ET.fromstring(text), input_dir="/tmp", structure="/data/IDX_start.xyz")


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
    result = subprocess.run([sys.executable, "-m", "so3k_driver.cli", "run", str(checkpoint), "--model", "ala3-xtb",
                             "--hydrogen-mass", "4", "--workdir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "checkpoint keeps the masses" in lines[0]


def nve_run(folder, timestep_fs, hydrogen_mass, picoseconds=1.0):
    """NVE of Ac-Ala3-NHMe with the bundled model from 300 K velocities: (time ps, conserved eV)."""
    import ase.io

    from so3k_driver.ipi.structures import ipi_xyz
    from so3k_driver.sampling.plumed_inputs import bundled_structure

    folder.mkdir()
    (folder / "start.xyz").write_text(ipi_xyz(ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz")), 30.0))
    text = (INPUTS / "nve_spectrum.xml").read_text()
    for old, new in [("ala3.xyz", "start.xyz"), ("> 0.5 </timestep>", f"> {timestep_fs} </timestep>")] + [
            (line, "") for line in text.splitlines() if "<trajectory" in line]:
        assert old in text
        text = text.replace(old, new)
    (folder / "nve.xml").write_text(text)
    steps = round(picoseconds * 1000 / timestep_fs)
    command = [sys.executable, "-m", "so3k_driver.cli", "run", str(folder / "nve.xml"), "--model", "ala3-xtb",
               "--steps", str(steps), "--workdir", str(folder), "--quiet", "--max-force", "0",
               "--address", f"so3k-test-{os.getpid()}-{folder.name}"]
    if hydrogen_mass is not None:
        command += ["--hydrogen-mass", str(hydrogen_mass)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    table = np.loadtxt(folder / "nve.out", ndmin=2)
    assert table[-1, 0] == steps
    return table[:, 1], table[:, 2]


def drift_and_spread(time_ps, conserved_ev):
    """(|slope of a straight-line fit| eV/ps, standard deviation eV) of the conserved quantity."""
    return abs(np.polyfit(time_ps, conserved_ev, 1)[0]), float(np.std(conserved_ev))


@pytest.mark.slow  # three NVE runs of 1 ps (2000 model calls): ~2-4 min
def test_heavy_hydrogens_make_2_fs_steps_conserve_energy_like_1_fs_with_natural_masses(tmp_path):
    """Same simulated time (1 ps), bundled model, Ac-Ala3-NHMe (42 atoms). Measured numbers in
    docs/ipi.md: at 2 fs, H = 4 amu fluctuates and drifts several times less than natural masses and
    about as much as natural masses at 1 fs (0.5 fs natural is still ~5x steadier)."""
    from ipi.utils.units import Constants

    runs = {label: drift_and_spread(*nve_run(tmp_path / label, timestep, mass))
            for label, timestep, mass in [("heavy2fs", 2.0, 4.0), ("natural2fs", 2.0, None), ("natural1fs", 1.0, None)]}
    print({label: f"drift {1e3 * d:.2f} meV/ps, spread {1e3 * s:.2f} meV" for label, (d, s) in runs.items()})
    (heavy_drift, heavy_spread), (natural_drift, natural_spread) = runs["heavy2fs"], runs["natural2fs"]
    assert heavy_spread < natural_spread / 3 and heavy_drift < natural_drift / 3
    assert heavy_spread < 2 * runs["natural1fs"][1]
    kinetic_per_kelvin = 1.5 * 42 * 8.617e-5  # eV per K of the 42 atoms' temperature
    assert heavy_drift / kinetic_per_kelvin < 0.5  # K/ps: negligible next to a thermostat
    masses = re.findall(r"<m shape='\(42\)'>\s*\[(.*?)\]", (tmp_path / "heavy2fs" / "RESTART").read_text(), re.S)
    hydrogens = read_numbers(str(INPUTS / "ala3.xyz")) == 1
    np.testing.assert_allclose(np.array([float(x) for x in masses[0].split(",")])[hydrogens] / Constants.amu, 4.0)
