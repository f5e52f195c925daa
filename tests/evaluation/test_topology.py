"""Covalent bonds from geometry (one criterion for the analysis and the driver) and the bond guard."""

import numpy as np
import pytest

from conftest import SHARED
from so3k_driver.errors import ModelBreakdown, UserError
from so3k_driver.evaluation import topology

pytestmark = pytest.mark.shared
ALA15 = SHARED / "structures" / "Ac-Ala15-NHMe_ext.xyz"
# a triclinic cell (rows, Å) wider than the 48 × 37 × 4 Å extended chain, so no image comes near it
CELL = np.array([[60.0, 0.0, 0.0], [9.0, 58.0, 0.0], [-7.0, 6.0, 55.0]])


@pytest.fixture(scope="module")
def ala15():
    import ase.io

    atoms = ase.io.read(ALA15)
    return atoms.numbers, atoms.positions


def all_pairs_bonds(numbers, positions, scale):
    from ase.data import covalent_radii

    radii = covalent_radii[numbers]
    distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    return (distance < scale * (radii[:, None] + radii[None])) & ~np.eye(len(numbers), dtype=bool)


def stretch_bond(numbers, positions, i, j, length):
    """Positions with bond i–j at ``length`` Å and every other bond as it was: the side of j moves
    rigidly along the bond (the molecule is a tree, so removing i–j splits it in two)."""
    graph = topology.bond_graph(numbers, positions)
    graph[i].discard(j)
    graph[j].discard(i)
    side, todo = {j}, [j]
    while todo:
        for k in graph[todo.pop()] - side:
            side.add(k)
            todo.append(k)
    assert i not in side
    bond = positions[j] - positions[i]
    moved = positions.copy()
    moved[sorted(side)] += (length / np.linalg.norm(bond) - 1) * bond
    return moved


def test_the_peptide_module_uses_the_one_bond_criterion(ala15):
    from so3k_driver.sampling import peptide

    assert peptide.bond_graph is topology.bond_graph
    assert (topology.TOPOLOGY_BOND_SCALE, topology.BREAKAGE_BOND_SCALE) == (1.2, 1.6)
    numbers, positions = ala15
    noisy = positions + np.random.default_rng(1).normal(scale=0.3, size=positions.shape)
    for scale in (topology.TOPOLOGY_BOND_SCALE, topology.BREAKAGE_BOND_SCALE):
        np.testing.assert_array_equal(topology.bond_matrix(numbers, noisy, scale), all_pairs_bonds(numbers, noisy, scale))
    assert topology.fragment_count(numbers, positions) == 1 and len(topology.bond_pairs(numbers, positions)) == 161


def test_the_bond_search_in_blocks_finds_the_same_bonds(ala15, monkeypatch):
    numbers, positions = ala15
    whole = topology.bond_pairs(numbers, positions)
    monkeypatch.setattr(topology, "PAIRS_PER_BLOCK", 1000)  # 6 rows of 162 atoms per block
    np.testing.assert_array_equal(topology.bond_pairs(numbers, positions), whole)


def test_a_broken_bond_is_named_with_its_length_limit_and_structure(ala15):
    numbers, positions = ala15
    guard = topology.BondGuard(numbers, positions)
    assert len(guard) == 161 and guard.active
    broken = stretch_bond(numbers, positions, 58, 60, 2.60)  # C59–C61 (1-based), the bond student v2 broke
    assert topology.fragment_count(numbers, broken) == 2
    batch = np.stack([positions, broken, positions])
    with pytest.raises(ModelBreakdown) as caught:
        guard.check(batch)
    message = str(caught.value)
    limit = 1.6 * 2 * 0.76  # Å: 1.6 × twice carbon's covalent radius
    assert "bond C59–C61 (1-based) of structure 2 in this request is 2.60 Å long" in message
    assert f"above the limit of {limit:.2f} Å" in message and "more bond" not in message
    assert "--max-bond-stretch 0 disables" in message and "earlier checkpoint" in message and "\n" not in message


def test_several_broken_bonds_name_the_worst_and_count_the_rest(ala15):
    numbers, positions = ala15
    broken = stretch_bond(numbers, positions, 58, 60, 2.50)
    carbon, hydrogen = next((i, j) for i, j in topology.bond_pairs(numbers, positions)
                            if {numbers[i], numbers[j]} == {1, 6})
    hydrogen, carbon = (carbon, hydrogen) if numbers[carbon] == 1 else (hydrogen, carbon)
    broken = stretch_bond(numbers, broken, carbon, hydrogen, 3.0)  # 3.0 / 1.07: further past its limit than C–C
    with pytest.raises(ModelBreakdown, match=rf"bond C{carbon + 1}–H{hydrogen + 1}|bond H{hydrogen + 1}–C{carbon + 1}") \
            as caught:
        topology.BondGuard(numbers, positions).check(broken)
    assert "; 1 more bond over the limit in this request)" in str(caught.value)


def test_an_intact_hot_structure_passes(ala15):
    """0.1 Å of noise per coordinate (more than thermal at 500 K for heavy atoms) breaks no bond."""
    numbers, positions = ala15
    noisy = positions + np.random.default_rng(0).normal(scale=0.1, size=(8,) + positions.shape)
    topology.BondGuard(numbers, positions).check(noisy)
    # a bond at 1.5 × its equilibrium length is hot, not broken
    topology.BondGuard(numbers, positions).check(stretch_bond(numbers, positions, 58, 60, 1.5 * 1.52))


def test_a_molecule_across_a_periodic_boundary_keeps_its_bonds(ala15):
    numbers, positions = ala15
    shifted = positions - positions.mean(axis=0) + CELL.sum(axis=0)  # centred on a corner of the cell
    fractional = shifted @ np.linalg.inv(CELL)
    wrapped = (fractional - np.floor(fractional)) @ CELL
    assert np.linalg.norm(wrapped - shifted, axis=1).max() > 50  # the chain is cut across the cell
    # the topology of the wrapped molecule is the molecule's own
    np.testing.assert_array_equal(topology.bond_pairs(numbers, wrapped, cell=CELL), topology.bond_pairs(numbers, positions))
    assert topology.fragment_count(numbers, wrapped, cell=CELL) == 1
    guard = topology.BondGuard(numbers, wrapped, reference_cell=CELL)
    assert len(guard) == 161
    # a second structure in a larger cell of its own: cells are per structure
    cells = np.stack([CELL, 1.1 * CELL])
    fractional_big = shifted @ np.linalg.inv(cells[1])
    batch = np.stack([wrapped, (fractional_big - np.floor(fractional_big)) @ cells[1]])
    guard.check(batch, cells)
    with pytest.raises(ModelBreakdown, match="more bonds over the limit"):  # without minimum image: cut bonds
        guard.check(batch, None)
    broken = stretch_bond(numbers, shifted, 58, 60, 2.6)
    fractional = broken @ np.linalg.inv(CELL)
    with pytest.raises(ModelBreakdown, match="bond C59–C61"):
        guard.check((fractional - np.floor(fractional)) @ CELL, CELL)


def test_zero_or_none_switches_the_guard_off_and_a_negative_stretch_is_refused(ala15):
    numbers, positions = ala15
    broken = stretch_bond(numbers, positions, 58, 60, 4.0)
    for off in (0, 0.0, None):
        guard = topology.BondGuard(numbers, positions, max_stretch=off)
        assert not guard.active
        guard.check(broken)
    with pytest.raises(ModelBreakdown):
        topology.BondGuard(numbers, positions, max_stretch=2.0).check(broken)  # 4.0 Å > 2.0 × 1.52 Å
    with pytest.raises(UserError, match="max_bond_stretch must be >= 0"):
        topology.BondGuard(numbers, positions, max_stretch=-1.0)


def test_only_bonds_of_the_reference_are_checked(ala15):
    """Atoms that were never bonded may drift apart freely (e.g. a hydrogen bond opening)."""
    numbers, positions = ala15
    far = positions.copy()
    far[:, 0] *= 3.0  # stretches every bond with an x component, and the non-bonded distances even more
    with pytest.raises(ModelBreakdown):
        topology.BondGuard(numbers, positions).check(far)
    single_atoms = np.array([6, 8])
    topology.BondGuard(single_atoms, np.array([[0.0, 0, 0], [5.0, 0, 0]])).check(np.array([[0.0, 0, 0], [50.0, 0, 0]]))


def test_one_bond_graph_two_scales_topology_and_breakage():
    import ase.io

    from so3k_driver.sampling.plumed_inputs import bundled_structure

    atoms = ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz"))
    graph = topology.bond_matrix(atoms.numbers, atoms.positions)
    assert topology.TOPOLOGY_BOND_SCALE == 1.2 and topology.BREAKAGE_BOND_SCALE == 1.6
    assert graph.sum() // 2 == len(atoms) - 1  # an acyclic molecule: N - 1 bonds
    stretched = atoms.positions.copy()
    c, h = next((i, j) for i, j in zip(*np.nonzero(graph)) if atoms.numbers[i] == 6 and atoms.numbers[j] == 1)
    stretched[h] = stretched[c] + 1.5 * (stretched[h] - stretched[c])  # C–H at ~1.64 Å: hot, not broken
    assert topology.fragment_count(atoms.numbers, stretched) == 1
    assert not topology.bond_matrix(atoms.numbers, stretched)[c, h]
    stretched[h] = stretched[c] + 3.0 * (atoms.positions[h] - atoms.positions[c])
    assert topology.fragment_count(atoms.numbers, stretched) == 2
