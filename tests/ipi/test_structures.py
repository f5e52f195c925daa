"""Structure files for i-PI: any file ASE reads becomes the xyz with a CELL comment that i-PI's reader needs."""

import ase
import ase.io
import numpy as np
import pytest

from so3k_driver.ipi.structures import ipi_structure_file, ipi_xyz, is_ipi_xyz, read_numbers
from so3k_driver.sampling.plumed_inputs import bundled_structure


def read_ipi_xyz(path):
    lines = open(path).read().splitlines()
    cell = [float(v) for v in lines[1].split("CELL(abcABC):")[1].split()[:6]]
    symbols = [line.split()[0] for line in lines[2:]]
    positions = np.array([[float(v) for v in line.split()[1:4]] for line in lines[2:]])
    return cell, symbols, positions


def test_a_plain_xyz_is_written_as_an_ipi_xyz_in_a_gas_phase_box(tmp_path):
    plain = bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    assert not is_ipi_xyz(plain)
    converted = ipi_structure_file(plain, str(tmp_path))
    assert converted == str(tmp_path / "Ac-Ala3-NHMe_ext.ipi.xyz") and is_ipi_xyz(converted)
    cell, symbols, positions = read_ipi_xyz(converted)
    atoms = ase.io.read(plain)
    assert cell == [100.0, 100.0, 100.0, 90.0, 90.0, 90.0]
    assert symbols == atoms.get_chemical_symbols()
    np.testing.assert_allclose(positions, atoms.positions, atol=1e-8)
    np.testing.assert_array_equal(read_numbers(converted), atoms.numbers)
    assert ipi_structure_file(converted, str(tmp_path / "elsewhere")) == converted  # already i-PI's: used as is


def test_a_periodic_cell_is_kept_and_the_atoms_turn_with_it(tmp_path):
    cell = np.array([[0.0, 6.0, 0.5], [5.0, 0.0, 0.0], [0.3, 0.2, 7.0]])  # a not along x
    atoms = ase.Atoms("OH2", cell=cell, pbc=True, scaled_positions=[[0.1, 0.2, 0.3], [0.2, 0.25, 0.3], [0.05, 0.3, 0.35]])
    ase.io.write(tmp_path / "water.extxyz", atoms)
    converted = ipi_structure_file(str(tmp_path / "water.extxyz"), str(tmp_path))
    parameters, symbols, positions = read_ipi_xyz(converted)
    np.testing.assert_allclose(parameters, atoms.cell.cellpar(), atol=1e-7)
    turned = ase.Atoms(symbols, positions=positions, cell=ase.geometry.cellpar_to_cell(parameters), pbc=True)
    assert np.allclose(turned.cell[0, 1:], 0.0) and abs(turned.cell[1, 2]) < 1e-12  # i-PI's orientation
    np.testing.assert_allclose(turned.get_scaled_positions(), atoms.get_scaled_positions(), atol=1e-8)
    np.testing.assert_allclose(turned.get_all_distances(mic=True), atoms.get_all_distances(mic=True), atol=1e-7)
    # a gas-phase study keeps its box, whatever cell the file carries
    assert ipi_xyz(atoms, keep_cell=False).splitlines()[1].startswith("# CELL(abcABC): 100.0 100.0 100.0 90 90 90")


def test_an_unreadable_file_is_named(tmp_path):
    (tmp_path / "broken.pdb").write_text("not a structure\n")
    with pytest.raises(ValueError, match="cannot read a structure from .*broken.pdb"):
        ipi_structure_file(str(tmp_path / "broken.pdb"), str(tmp_path))


def test_the_gas_phase_box_text_is_unchanged():
    """Generated inputs in the repository (ipi_inputs/ala15_ext.xyz) keep their bytes."""
    text = ipi_xyz(ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]))
    assert text.splitlines()[1] == "# CELL(abcABC): 100.0 100.0 100.0 90 90 90 positions{angstrom} cell{angstrom}"


def test_the_elements_of_an_ipi_input_come_from_its_initial_file_or_a_restarts_names(tmp_path):
    """An i-PI XML names its structure in <initialize><file> (read relative to the XML); a RESTART lists
    the atom names in <beads><names>. Bad XML is one IpiInputError naming the file, as for so3k run."""
    from pathlib import Path

    from so3k_driver.errors import IpiInputError

    repo = Path(__file__).resolve().parents[2]
    expected = ase.io.read(repo / "ipi_inputs" / "ala3.xyz").numbers
    np.testing.assert_array_equal(read_numbers(str(repo / "ipi_inputs" / "nvt.xml")), expected)
    restart = tmp_path / "RESTART"
    restart.write_text("<simulation><system><beads natoms='3' nbeads='1'><names shape='(3)'> [ O, H, H ] </names>"
                       "</beads></system></simulation>")
    np.testing.assert_array_equal(read_numbers(str(restart)), [8, 1, 1])
    broken = tmp_path / "broken.xml"
    broken.write_text("<simulation><system>")
    with pytest.raises(IpiInputError, match="broken.xml is not valid XML"):
        read_numbers(str(broken))
    other = tmp_path / "other.xml"
    other.write_text("<html></html>")
    with pytest.raises(IpiInputError, match="expected i-PI's <simulation>"):
        read_numbers(str(other))
