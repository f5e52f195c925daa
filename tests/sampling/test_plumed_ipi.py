"""PLUMED through i-PI's <ffplumed> with the real kernel: metadynamics on the Ala15 end-to-end distance.

One short run (in-process model, random-weight SO3krates) checked against the trajectory: COLVAR
equals the end-to-end distance from the xyz (Å), a hill every PACE steps, and the bias energy that
i-PI applies (eV) equals PLUMED's (kJ/mol).
"""

import json

import ase.io
import numpy as np
import pytest

from conftest import SO3KRATES_RANDOM
from so3k_driver.sampling import peptide, plumed_inputs, run as sampling_run
from so3k_driver.sampling.settings import MetadSettings, StudySettings
from so3k_driver.sampling.analysis import ipi_outputs, plumed_files

pytestmark = pytest.mark.shared
PACE, STEPS = 5, 20
KJ_PER_MOL_PER_EV = 96.485332


@pytest.fixture(scope="module")
def metad_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("metad")
    structure = plumed_inputs.bundled_structure("Ac-Ala15-NHMe_ext.xyz")
    atoms = ase.io.read(structure)
    settings = StudySettings(structure=str(structure), model=SO3KRATES_RANDOM, temperatures=(300.0,), steps=STEPS,
                             output_stride=1, metad=MetadSettings(pace=PACE, colvar_stride=1, sigma=0.05, height=5.0),
                             backend="direct")
    sampling_run.prepare(run_dir, settings, force=True)
    piece = sampling_run.run_study(run_dir)
    assert (piece.first_step, piece.last_step, piece.interrupted) == (0, STEPS, False)
    backbone = peptide.find_backbone(atoms.numbers, atoms.positions)
    return run_dir, backbone


def test_colvar_equals_trajectory_end_to_end(metad_run):
    run_dir, backbone = metad_run
    colvar = plumed_files.read_plumed(run_dir / "COLVAR")
    steps = ipi_outputs.read_properties(run_dir / "sim.out")["step"].astype(int)
    _, frames = ipi_outputs.read_xyz_frames(run_dir / "sim.pos_0.xyz")
    e2e = peptide.distance(frames, *backbone.end_to_end_atoms())  # Å
    assert abs(e2e[0] - 54.657) < 0.01  # extended chain, no minimum-image folding (NOPBC)
    # PLUMED's time is a call counter: COLVAR time t is MD step t
    by_step = dict(zip(steps, e2e))
    matched = [(value, by_step[int(t)]) for t, value in zip(colvar["time"], colvar["e2e"]) if int(t) in by_step]
    assert len(matched) >= STEPS - 1
    np.testing.assert_allclose(*np.array(matched).T, atol=2e-4)  # Å: i-PI writes xyz as %12.5e (±5e-5 Å)
    rg = peptide.radius_of_gyration(frames, backbone.heavy_backbone())
    np.testing.assert_allclose(colvar["rg"][: len(rg) - 1], rg[1:len(colvar["rg"]) + 1], atol=2e-4)


def test_hills_grow_every_pace_steps(metad_run):
    run_dir, _ = metad_run
    hills = plumed_files.read_plumed(run_dir / "HILLS")
    np.testing.assert_allclose(hills["time"], np.arange(PACE, STEPS + 1, PACE))
    assert hills["height"][0] == pytest.approx(5.0 * 10 / 9)  # well-tempered: HEIGHT·γ/(γ-1), kJ/mol
    assert np.all(np.diff(hills["height"]) < 0)  # tempering shrinks later hills
    np.testing.assert_allclose(hills["sigma_e2e"], 0.05)  # Å


def test_bias_energy_agrees_between_ipi_and_plumed(metad_run):
    run_dir, _ = metad_run
    colvar = plumed_files.read_plumed(run_dir / "COLVAR")
    properties = ipi_outputs.read_properties(run_dir / "sim.out")
    ipi_bias = dict(zip(properties["step"].astype(int), properties["ensemble_bias"] * KJ_PER_MOL_PER_EV))
    # at a deposition step i-PI reports the bias after the new hill, PLUMED's COLVAR the one before it
    pairs = [(b, ipi_bias[int(t)]) for t, b in zip(colvar["time"], colvar["metad.bias"])
             if int(t) in ipi_bias and int(t) % PACE]
    pairs = np.array(pairs)
    assert pairs[:, 0].max() > 1.0  # kJ/mol: hills were felt
    np.testing.assert_allclose(pairs[:, 0], pairs[:, 1], atol=2e-5, rtol=1e-5)


def test_colvar_holds_the_reweighting_bias(metad_run):
    """metad.rbias = V(s,t) - c(t): c(t) starts at 0 and only grows as hills are added (kJ/mol)."""
    run_dir, _ = metad_run
    colvar = plumed_files.read_plumed(run_dir / "COLVAR")
    c_of_t = colvar["metad.bias"] - colvar["metad.rbias"]
    assert c_of_t[0] == pytest.approx(0.0, abs=1e-9)
    assert c_of_t[-1] > 0.1  # kJ/mol: hills of 5.6 kJ/mol, so c(t) is not zero at the end
    assert np.all(np.diff(c_of_t) >= -2.5e-6)  # COLVAR prints 6 decimals: a difference of two is good to 1e-6


def test_a_direct_backend_study_counts_its_model_calls(metad_run):
    """The in-process PES of a direct-backend study writes its call counts like the socket driver:
    one model call per MD step (one replica here), STEPS of them in this piece."""
    import json

    run_dir, _ = metad_run
    counts = json.loads((run_dir / "so3k_driver_calls.json").read_text())
    assert counts["per_step"] == 1
    assert json.loads((run_dir / "so3k_pes.json").read_text())["lr_cutoff"] == 0  # the PES's "all pairs"
    assert counts["calls_per_step"] == pytest.approx(1.0)
    assert STEPS <= counts["calls"] <= STEPS + 1  # +1: i-PI evaluates the starting structure


def test_a_helix_form_run_biases_alpha_minus_three_ten_and_is_analysed_along_it(tmp_path):
    """--metad helix-form through i-PI and PLUMED from the bundled α-helix: COLVAR's hb and hb3 are
    peptide.helix_hbond_count of span 4 and 3 on the trajectory's frames (Å) and form = hb − hb3 is what the
    hills are laid on; the reweighted free energy is along form, in H-bonds, with the end-to-end profile beside it."""
    from so3k_driver.sampling.analysis import free_energy_report

    structure = plumed_inputs.bundled_structure("Ac-Ala15-NHMe_folded.xyz")
    atoms = ase.io.read(structure)
    metad = MetadSettings(cv="helix-form", pace=PACE, colvar_stride=1, height=5.0)
    settings = StudySettings(structure=str(structure), model=SO3KRATES_RANDOM, temperatures=(300.0,), steps=STEPS,
                             output_stride=1, metad=metad, backend="direct")
    sampling_run.prepare(tmp_path, settings, force=True)
    sampling_run.run_study(tmp_path)
    backbone = peptide.find_backbone(atoms.numbers, atoms.positions)
    colvar = plumed_files.read_plumed(tmp_path / "COLVAR")
    steps = ipi_outputs.read_properties(tmp_path / "sim.out")["step"].astype(int)
    _, frames = ipi_outputs.read_xyz_frames(tmp_path / "sim.pos_0.xyz")
    by_step = dict(zip(steps, frames))
    rows = [k for k, t in enumerate(colvar["time"]) if int(t) in by_step]
    assert len(rows) >= STEPS - 1
    stacked = np.stack([by_step[int(colvar["time"][k])] for k in rows])
    # xyz written as %12.5e: the counts agree to the switch's slope times 5e-5 Å
    np.testing.assert_allclose(colvar["hb"][rows], peptide.helix_hbond_count(stacked, backbone, span=4), atol=1e-3)
    np.testing.assert_allclose(colvar["hb3"][rows], peptide.helix_hbond_count(stacked, backbone, span=3), atol=1e-3)
    np.testing.assert_allclose(colvar["form"], colvar["hb"] - colvar["hb3"], atol=1e-5)
    assert 2.0 < colvar["form"][0] < 3.5  # the bundled α-helix: hb 8.1, hb3 5.4
    hills = plumed_files.read_plumed(tmp_path / "HILLS")
    assert "form" in hills and len(hills["form"]) == STEPS // PACE
    np.testing.assert_allclose(hills["sigma_form"], 0.35)  # the CV's default width, H-bonds

    (tmp_path / "analysis").mkdir()
    lines, plots = free_energy_report.free_energy_analysis(tmp_path, tmp_path / "analysis", [300.0], burn_in=0.0)
    document = json.loads((tmp_path / "analysis" / "free_energy.json").read_text())
    assert document["cvs"] == ["form"] and document["cv_unit"] == "H-bonds"
    assert any("end-to-end distance" in line for line in lines) and len(plots) == 2
