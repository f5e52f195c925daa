"""Backbone detection and PLUMED input generation (no i-PI run)."""

import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest

from so3k_driver.sampling import peptide, plumed_inputs
from so3k_driver.sampling.plumed_inputs import bundled_structure
from so3k_driver.sampling.settings import MetadSettings

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, first, last, distance", [
    ("Ac-Ala15-NHMe_ext.xyz", 5, 151, 54.66), ("Ac-Ala15-NHMe_folded.xyz", 5, 155, 23.26),
    ("Ac-Ala3-NHMe_ext.xyz", 5, 31, 10.95)])
def test_end_to_end_atoms_found_by_topology(name, first, last, distance):
    atoms = ase.io.read(bundled_structure(name))
    backbone = peptide.find_backbone(atoms.numbers, atoms.positions)
    i, j = backbone.end_to_end_atoms()
    assert (i + 1, j + 1) == (first, last)  # 1-based, as listed in the structures' README
    assert peptide.distance(atoms.positions, i, j) == pytest.approx(distance, abs=0.01)  # Å


def test_helix_detected_only_in_folded_structure():
    for name, helical in [("Ac-Ala15-NHMe_folded.xyz", True), ("Ac-Ala15-NHMe_ext.xyz", False)]:
        atoms = ase.io.read(bundled_structure(name))
        backbone = peptide.find_backbone(atoms.numbers, atoms.positions)
        phi = peptide.dihedrals(atoms.positions, backbone.phi_atoms())
        psi = peptide.dihedrals(atoms.positions, backbone.psi_atoms())
        fraction = peptide.helical_residues(phi, psi).mean()
        assert (fraction > 0.8) if helical else (fraction == 0.0)
        assert (peptide.helix_hbonds(atoms.positions, backbone).mean() > 0.6) == helical


def test_alpha_and_three_ten_helices_are_told_apart_by_their_hydrogen_bonds():
    """Two Ac-Ala15-NHMe frames with helical φ/ψ almost everywhere: SO3LR's α-helix (i→i+4 H-bonds) and the
    3₁₀-helix student v13 formed (i→i+3), from docs/results/ala15_folding_student_v13/helix_forms_182ps."""
    frames = ase.io.read(REPO / "docs/results/ala15_folding_student_v13/helix_forms_182ps.start.extxyz", index=":")
    alpha, three_ten = frames[0], frames[1]
    backbone = peptide.find_backbone(alpha.numbers, alpha.positions)
    assert (len(backbone.helix_hbond_pairs(4)), len(backbone.helix_hbond_pairs(3))) == (13, 14)
    counts = [(int(peptide.helix_hbonds(f.positions, backbone, span=4).sum()),
               int(peptide.helix_hbonds(f.positions, backbone, span=3).sum())) for f in (alpha, three_ten)]
    assert counts[0][0] >= 8 and counts[0][0] > counts[0][1]
    assert counts[1][0] <= 1 and counts[1][1] >= 8
    # so3k analyze's per-frame observables carry the same two fractions
    from so3k_driver.sampling.analysis import ipi_outputs, observables

    series = ipi_outputs.ReplicaSeries(300.0, np.array([0.0, 0.5]), np.array([alpha.positions, three_ten.positions]),
                                       np.zeros(2), np.zeros(2))
    (observed,) = observables.observables(alpha.get_chemical_symbols(), [series])
    assert observed.helix_hbond.tolist() == [counts[0][0] / 13, counts[1][0] / 13]
    assert observed.three_ten_hbond.tolist() == [counts[0][1] / 14, counts[1][1] / 14]
    # and the one-frame description (so3k sample status, bench/helix_forms.py) says the same
    shapes = [peptide.helix_shape(f.positions, backbone) for f in (alpha, three_ten)]
    assert [(s["alpha_hbonds"], s["three_ten_hbonds"]) for s in shapes] == counts
    assert all(s["alpha_hbonds_possible"] == 13 and s["three_ten_hbonds_possible"] == 14 for s in shapes)
    assert [s["helix_map"].count("H") for s in shapes] == [s["helical_residues"] for s in shapes]
    assert all(s["residues"] == 15 and s["helical_residues"] >= 12 for s in shapes)
    first, last = backbone.end_to_end_atoms()
    assert shapes[1]["end_to_end_A"] == pytest.approx(peptide.distance(three_ten.positions, first, last), abs=0.005)


def test_a_chain_too_short_for_a_span_has_no_hydrogen_bonds_of_it():
    """Ac-Ala3-NHMe holds one i→i+4 pair and two i→i+3 pairs, and none eight apart: (frames, 0), not an error."""
    atoms = ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz"))
    backbone = peptide.find_backbone(atoms.numbers, atoms.positions)
    frames = np.stack([atoms.positions] * 2)
    assert [peptide.helix_hbonds(frames, backbone, span=span).shape for span in (4, 3, 8)] == [(2, 1), (2, 2), (2, 0)]
    shape = peptide.helix_shape(atoms.positions, backbone)
    assert (shape["alpha_hbonds_possible"], shape["three_ten_hbonds_possible"]) == (1, 2)


def test_plumed_inputs_state_units_nopbc_and_flush():
    atoms = ase.io.read(bundled_structure("Ac-Ala15-NHMe_ext.xyz"))
    text = plumed_inputs.end_to_end_metad(atoms.numbers, atoms.positions, MetadSettings(), 300.0, ".T0")
    assert plumed_inputs.UNITS_LINE in text and "FLUSH" in text and "TEMP=300" in text
    assert "DISTANCE ATOMS=5,151 NOPBC" in text and "FILE=HILLS.T0" in text
    assert all("NOPBC" in line for line in text.splitlines() if line.startswith(("e2e:", "rg:")))
    ala3 = ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz"))
    torsions = plumed_inputs.backbone_torsion_metad(ala3.numbers, ala3.positions, MetadSettings(cv="backbone"), 300.0)
    assert "phi2: TORSION ATOMS=11,17,19,21 NOPBC" in torsions and "ARG=phi2,psi2" in torsions


def test_missing_plumed_kernel_names_the_variable(monkeypatch):
    from so3k_driver.errors import UserError
    from so3k_driver.ipi.executables import find_plumed_kernel

    monkeypatch.setitem(sys.modules, "plumed", None)  # import fails
    with pytest.raises(UserError, match="PLUMED_KERNEL") as error:
        find_plumed_kernel()
    assert "pip install --no-deps hillclimber==0.1.8" in str(error.value)


def test_hills_sum_is_minus_free_energy():
    from so3k_driver.sampling.analysis.plumed_files import free_energy_from_hills

    hills = {"time": np.array([1.0, 2.0]), "e2e": np.array([10.0, 12.0]), "sigma_e2e": np.array([0.5, 0.5]),
             "height": np.array([2.0, 1.0]), "biasf": np.array([10.0, 10.0])}
    grid = np.linspace(5, 15, 101)
    f = free_energy_from_hills(hills, [grid], [None])
    assert f.min() == 0.0 and grid[np.argmin(f)] == pytest.approx(10.0, abs=0.1)
    assert f[-1] == pytest.approx(2.0, abs=1e-3)  # far from both hills: 0 - (-2) kJ/mol


def test_hills_files_before_the_first_hill_are_read_as_empty(tmp_path):
    """PLUMED writes the FIELDS header with the first hill: a run shorter than PACE leaves empty files."""
    from so3k_driver.sampling.analysis.plumed_files import read_plumed
    from so3k_driver.sampling.analysis.report import free_energy_profiles

    (tmp_path / "HILLS.T0").write_text("")
    (tmp_path / "HILLS.T1").write_text("#! FIELDS time e2e sigma_e2e height biasf\n1.0 20.0 0.5 1.1 10\n")
    assert read_plumed(tmp_path / "HILLS.T0") == {}
    profiles = free_energy_profiles(tmp_path, [300.0, 330.0])
    assert [label for label, *_ in profiles] == ["330 K"]
    (tmp_path / "COLVAR").write_text("1.0 2.0\n")  # data without a header is still refused
    with pytest.raises(ValueError, match="FIELDS"):
        read_plumed(tmp_path / "COLVAR")


def test_so3k_run_makes_plumed_input_paths_absolute(tmp_path):
    """i-PI resolves <plumed_dat> against its working directory, not the input's folder."""
    from pathlib import Path

    from so3k_driver.ipi import ipi_xml

    inputs = Path(__file__).resolve().parents[2] / "ipi_inputs"
    root = ipi_xml.load(str(inputs / "remd_metad.xml")).getroot()
    ipi_xml.apply_overrides(root, input_dir=str(inputs))
    paths = [element.text.strip() for element in root.iter("plumed_dat")]
    assert len(paths) == 4
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in paths)


def test_a_configuration_that_breaks_apart_is_found():
    from so3k_driver.sampling.analysis.ipi_outputs import first_broken_frame, fragment_count, fragment_counts

    atoms = ase.io.read(bundled_structure("Ac-Ala15-NHMe_ext.xyz"))
    symbols = atoms.get_chemical_symbols()
    intact = atoms.positions
    assert fragment_count(symbols, intact) == 1
    hot = intact + np.random.default_rng(0).normal(scale=0.05, size=intact.shape)  # thermal noise keeps bonds
    exploded = intact.copy()
    exploded[8:46] *= 3.0  # the middle of the chain flies apart (as seen in a 450 K run)
    stretched = intact.copy()
    stretched[9] += 2.0 * (intact[9] - intact[8]) / np.linalg.norm(intact[9] - intact[8])  # one hot frame
    frames = np.stack([intact, hot, stretched, hot, exploded, exploded])
    index, fragments = first_broken_frame(symbols, frames)
    assert index == 4 and fragments > 1
    assert fragment_count(symbols, stretched) == 2
    assert first_broken_frame(symbols, frames[:4]) is None  # a break that does not last is not one
    # the fast count (only frames with a bond of frame 0 over the limit are searched) is the full one
    np.testing.assert_array_equal(fragment_counts(symbols, frames), [fragment_count(symbols, f) for f in frames])


def plumed_colvar(text: str, atoms, folder) -> dict:
    """One PLUMED evaluation of input text on atoms (Å) through PLUMED's Python API: COLVAR's first line."""
    import os

    plumed = pytest.importorskip("plumed")
    from so3k_driver.ipi.executables import find_plumed_kernel
    from so3k_driver.sampling.analysis import plumed_files

    find_plumed_kernel()
    (folder / "plumed.dat").write_text(text)
    here = os.getcwd()
    os.chdir(folder)  # PLUMED writes COLVAR and HILLS beside it
    try:
        n = len(atoms)
        engine = plumed.Plumed()
        for key, value in [("setMDEngine", "python"), ("setNatoms", n), ("setTimestep", 0.001),
                           ("setLogFile", "plumed.log"), ("setPlumedDat", "plumed.dat"), ("init", None)]:
            engine.cmd(key) if value is None else engine.cmd(key, value)
        positions = np.ascontiguousarray(atoms.positions * 0.1)  # nm: PLUMED's MD-side unit
        forces, virial = np.zeros((n, 3)), np.zeros((3, 3))
        for key, value in [("setStep", 0), ("setBox", np.eye(3) * 10.0), ("setMasses", atoms.get_masses().copy()),
                           ("setCharges", np.zeros(n)), ("setPositions", positions), ("setForces", forces),
                           ("setVirial", virial)]:
            engine.cmd(key, value)
        engine.cmd("calc")
        engine.finalize()
    finally:
        os.chdir(here)
    return {name: values[0] for name, values in plumed_files.read_plumed(folder / "COLVAR").items()}


@pytest.mark.parametrize("name, low, high", [("Ac-Ala15-NHMe_folded.xyz", 8.0, 13.0),
                                             ("Ac-Ala15-NHMe_ext.xyz", 0.0, 0.5)])
def test_helix_cv_counts_the_i_to_i4_hydrogen_bonds_as_plumed_computes_them(tmp_path, name, low, high):
    """PLUMED's hb (the generated input, evaluated by the real kernel) equals Σ s(r_OH) over the i→i+4
    pairs computed here, with s the rational switch at 2.5 Å: about 13 × 0.8 in the helix, ~0 extended."""
    atoms = ase.io.read(bundled_structure(name))
    backbone = peptide.find_backbone(atoms.numbers, atoms.positions)
    pairs = backbone.helix_hbond_pairs()
    assert len(pairs) == 13  # Ac-(Ala)15-NHMe: acceptors acetyl O .. O(12), donors H(4) .. cap NH
    text = plumed_inputs.metad_input(atoms.numbers, atoms.positions, MetadSettings(cv="helix", sigma=0.25), 300.0)
    assert "GRID_MAX=14" in text and "SIGMA=0.25" in text and "NOPBC" in text
    r = np.array([peptide.distance(atoms.positions, o, h) for o, h in pairs]) / peptide.HELIX_HBOND_CUTOFF_A
    expected = float(np.sum((1 - r**6) / (1 - r**12)))
    assert low < expected < high
    # the analysis's count is the same function, for one frame and for a stack of frames
    assert peptide.helix_hbond_count(atoms.positions, backbone) == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(peptide.helix_hbond_count(np.stack([atoms.positions] * 2), backbone), [expected] * 2)
    colvar = plumed_colvar(text, atoms, tmp_path)
    assert colvar["hb"] == pytest.approx(expected, abs=1e-4)
    assert colvar["e2e"] == pytest.approx(peptide.distance(atoms.positions, *backbone.end_to_end_atoms()), abs=1e-3)


def test_helix_form_cv_is_alpha_minus_three_ten_hydrogen_bonds_as_plumed_computes_them(tmp_path):
    """PLUMED's hb, hb3 and form = hb − hb3 (the helix-form input, evaluated by the real kernel) on the
    α-helix and the 3₁₀-helix of test_alpha_and_three_ten_helices_are_told_apart_by_their_hydrogen_bonds equal
    peptide.helix_hbond_count of span 4 and 3; form is positive for the α-helix (+1.5: its i→i+3 pairs still
    count about half each), −6.2 for the 3₁₀, and the METAD grid spans -(14 + 1) .. 13 + 1 with the CV's
    default hill width."""
    frames = ase.io.read(REPO / "docs/results/ala15_folding_student_v13/helix_forms_182ps.start.extxyz", index=":")
    backbone = peptide.find_backbone(frames[0].numbers, frames[0].positions)
    forms = []
    for k, atoms in enumerate(frames[:2]):
        text = plumed_inputs.metad_input(atoms.numbers, atoms.positions, MetadSettings(cv="helix-form"), 300.0)
        assert "ARG=form " in text and "GRID_MIN=-15 GRID_MAX=14" in text and "SIGMA=0.35" in text
        folder = tmp_path / str(k)
        folder.mkdir()
        colvar = plumed_colvar(text, atoms, folder)
        alpha = peptide.helix_hbond_count(atoms.positions, backbone, span=4)
        three_ten = peptide.helix_hbond_count(atoms.positions, backbone, span=3)
        assert (colvar["hb"], colvar["hb3"]) == (pytest.approx(alpha, abs=1e-4), pytest.approx(three_ten, abs=1e-4))
        assert colvar["form"] == pytest.approx(alpha - three_ten, abs=1e-4)
        forms.append(colvar["form"])
    assert forms[0] > 1.0 and forms[1] < -5.0


def test_helix_hbond_count_switch_is_one_half_at_the_cutoff_and_falls_off_smoothly():
    """One i→i+4 pair (Ac-Ala3-NHMe's acetyl O and cap H) moved along a line: s = 1/2 exactly at 2.5 Å (the
    0/0 point of the rational form), 1/(1 + x⁶) elsewhere (0.79 at 2 Å, 0.12 at 3.5 Å); no H-bond of span 5."""
    atoms = ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz"))
    backbone = peptide.find_backbone(atoms.numbers, atoms.positions)
    (o, h), = backbone.helix_hbond_pairs()
    direction = (atoms.positions[h] - atoms.positions[o]) / peptide.distance(atoms.positions, o, h)
    frames = []
    for r in (2.0, 2.5, 3.5):
        p = atoms.positions.copy()
        p[h] = p[o] + r * direction
        frames.append(p)
    counts = peptide.helix_hbond_count(np.stack(frames), backbone)
    np.testing.assert_allclose(counts, [1 / (1 + 0.8**6), 0.5, 1 / (1 + 1.4**6)], rtol=1e-12)
    assert counts[0] == pytest.approx(0.79, abs=0.005) and counts[2] == pytest.approx(0.12, abs=0.005)
    assert peptide.helix_hbond_count(atoms.positions, backbone, span=5) == 0.0


@pytest.mark.parametrize("name, low, high", [("Ac-Ala15-NHMe_folded.xyz", 27.0, 30.0),
                                             ("Ac-Ala15-NHMe_ext.xyz", 4.0, 8.0)])
def test_helix_torsion_cv_is_alphabeta_over_every_backbone_torsion(tmp_path, name, low, high):
    """PLUMED's ab (ALPHABETA in the generated input, evaluated by the real kernel) equals
    Σ ½(1 + cos(θ − θ_α)) over the 15 φ and 15 ψ computed here: ~29 of 30 in the helix, ~6 extended."""
    atoms = ase.io.read(bundled_structure(name))
    backbone = peptide.find_backbone(atoms.numbers, atoms.positions)
    phi = np.radians(peptide.dihedrals(atoms.positions[None], backbone.phi_atoms())[0])
    psi = np.radians(peptide.dihedrals(atoms.positions[None], backbone.psi_atoms())[0])
    assert len(phi) == len(psi) == 15
    expected = float(np.sum(0.5 * (1 + np.cos(phi - plumed_inputs.ALPHA_PHI_RAD)))
                     + np.sum(0.5 * (1 + np.cos(psi - plumed_inputs.ALPHA_PSI_RAD))))
    assert low < expected < high
    text = plumed_inputs.metad_input(atoms.numbers, atoms.positions, MetadSettings(cv="helix-torsions"), 300.0)
    assert "GRID_MAX=31" in text and "SIGMA=0.5" in text and "ATOMS30=" in text
    colvar = plumed_colvar(text, atoms, tmp_path)
    assert colvar["ab"] == pytest.approx(expected, abs=1e-4)
    assert colvar["e2e"] == pytest.approx(peptide.distance(atoms.positions, *backbone.end_to_end_atoms()), abs=1e-3)
