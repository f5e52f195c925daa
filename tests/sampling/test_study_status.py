"""sampling/pieces.py and sampling/status.py (``so3k sample status``): every piece of a study is recorded
when it starts and when it ends, and the status says where the study stands without changing it."""

import json

import pytest

from conftest import study_held_elsewhere
from so3k_driver.cli.main import main as so3k
from so3k_driver.sampling import pieces, plumed_inputs, run as sampling_run, status as study_status
from so3k_driver.sampling.analysis import plumed_files
from so3k_driver.sampling.settings import MetadSettings, StudySettings



@pytest.fixture(scope="module")
def remd_study(tmp_path_factory):
    """Ac-Ala3-NHMe, 2 replicas at 300 and 400 K with backbone metadynamics, run in two pieces (12 + 12 steps)."""
    pytest.importorskip("plumed")
    folder = tmp_path_factory.mktemp("status") / "study"
    structure = plumed_inputs.bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    sampling_run.prepare(folder, StudySettings(
        structure=str(structure), model="ala3-xtb", temperatures=(300.0, 400.0), steps=12, timestep_fs=1.0,
        output_stride=4, exchange_stride=4, metad=MetadSettings(cv="backbone", pace=4, colvar_stride=4),
        backend="direct"))
    sampling_run.run_study(folder)
    sampling_run.run_study(folder, total_steps=24)
    return folder


def test_a_piece_without_an_end_is_running_only_while_the_lock_is_held():
    ended = {"first_step": 0, "end": {"first_step": 0, "last_step": 100, "wall_s": 36.0}}
    open_piece = {"first_step": 100, "end": None}
    assert pieces.running_piece([ended, open_piece], lock_held=True) is open_piece
    assert pieces.running_piece([ended, open_piece], lock_held=False) is None
    assert pieces.running_piece([ended], lock_held=True) is None
    assert pieces.running_piece([], lock_held=True) is None
    # 100 steps of 2 fs in 36 s: 20 ps per hour; the open piece counts as killed unless it runs
    assert pieces.history_summary([ended, open_piece], 2.0, running=True)["killed"] == 0
    summary = pieces.history_summary([ended, open_piece], 2.0, running=False)
    assert summary["killed"] == 1 and summary["ps_per_hour"] == pytest.approx(20.0)


def test_each_piece_is_recorded_when_it_starts_and_when_it_ends(remd_study):
    history = pieces.read_pieces(remd_study)
    assert [(p["first_step"], p["total_steps"]) for p in history] == [(0, 12), (12, 24)]
    assert [(p["end"]["first_step"], p["end"]["last_step"], p["end"]["outcome"]) for p in history] == [
        (0, 12, "finished"), (12, 24, "finished")]
    assert all(p["model"] == "ala3-xtb" and p["end"]["wall_s"] > 0 for p in history)
    assert history[0]["end"]["unix_s"] <= history[1]["unix_s"]


def test_the_analysis_summary_says_which_model_ran_and_what_the_pieces_took(remd_study, tmp_path):
    from so3k_driver.sampling.analysis.report import analyze

    summary = analyze(remd_study, out_dir=tmp_path / "analysis").read_text()
    wall_h = sum(p["end"]["wall_s"] for p in pieces.read_pieces(remd_study)) / 3600
    assert (f"Model: ala3-xtb. 2 pieces logged in pieces.jsonl: 24 steps in {wall_h:.2f} h of wall time, "
            f"{0.024 / wall_h:.1f} ps per hour per system.") in summary
    record = json.loads((tmp_path / "analysis" / "summary.json").read_text())["run_history"]
    assert record["models"] == [{"model": "ala3-xtb", "until_step": None}]
    assert (record["pieces"]["pieces"], record["pieces"]["ended_steps"], record["pieces"]["killed"]) == (2, 24, 0)


def test_status_reports_steps_speed_and_the_cv_ranges_per_temperature(remd_study):
    record = study_status.study_status(remd_study)
    assert record["running_by"] is None
    assert (record["step"], record["total_steps"], record["restart_step"]) == (24, 24, 24)
    assert record["ps_per_system"] == pytest.approx(0.024)  # 24 steps of 1 fs
    assert (record["pieces"], record["pieces_killed"]) == (2, 0)
    finished = record["last_finished_piece"]
    assert (finished["first_step"], finished["last_step"]) == (12, 24)
    assert finished["ps_per_hour"] == pytest.approx(0.012 / finished["wall_s"] * 3600)
    assert record["hours_left"] == 0.0
    assert [(row["label"], row["temperature_K"]) for row in record["colvar"]] == [("T0", 300.0), ("T1", 400.0)]
    for row, path in zip(record["colvar"], plumed_files.temperature_files(remd_study, "COLVAR")):
        columns = plumed_files.read_plumed(path)
        assert row["step"] == int(columns["time"][-1])
        psi2 = row["columns"]["psi2"]
        assert (psi2["last"], psi2["min"], psi2["max"], psi2["unit"]) == (
            columns["psi2"][-1], columns["psi2"].min(), columns["psi2"].max(), "rad")
        assert row["columns"]["metad.bias"]["unit"] == "kJ/mol" and "metad.rbias" not in row["columns"]
    text = "\n".join(study_status.status_lines(record))
    assert "not running" in text and "step 24 of 24 (100.0 %): 0.02 of 0.02 ps per system" in text
    assert "last finished piece" in text and "metad.bias (kJ/mol)" in text and "psi2 (rad)" in text


def test_status_splits_a_step_into_the_model_and_the_rest_from_the_driver_s_counts(remd_study, tmp_path):
    import os
    import shutil

    # the real counts the direct backend wrote at the end of the second piece
    counts = json.loads((remd_study / "so3k_driver_calls.json").read_text())
    [cost] = study_status.study_status(remd_study)["step_costs"]
    assert cost["file"] == "so3k_driver_calls.json" and not cost["this_piece"]
    assert (cost["ms_per_step"], cost["model_ms_per_call"], cost["calls_per_step"]) == (
        counts["ms_per_step"], counts["model_ms_per_call"], counts["calls_per_step"])
    model_per_step = counts["model_ms_per_call"] * counts["calls_per_step"]
    assert cost["rest_ms_per_step"] == pytest.approx(counts["ms_per_step"] - model_per_step)
    # known counts: 103 ms per step, two calls of 40 ms: 23 ms besides the model, 1.29 x
    study = tmp_path / "copy"
    shutil.copytree(remd_study, study)
    path = study / "so3k_driver_calls.json"
    path.write_text(json.dumps({"ms_per_step": 103.0, "model_ms_per_call": 40.0, "calls_per_step": 2.0}))
    os.utime(path, (1796630000.0, 1796630000.0))
    (study / "so3k_driver_mts_calls.json").write_text(json.dumps({"ms_per_step": None, "calls_per_step": None}))
    [cost] = study_status.step_costs(study, piece_started_unix_s=1796629000.0)
    assert cost["this_piece"] and cost["rest_ms_per_step"] == pytest.approx(23.0)
    assert cost["step_over_model"] == pytest.approx(103.0 / 80.0)
    assert not study_status.step_costs(study, piece_started_unix_s=1796631000.0)[0]["this_piece"]
    text = "\n".join(study_status.status_lines(study_status.study_status(study)))
    assert ("time per step: 103.0 ms = model 40.0 ms per call × 2.00 calls + 23.0 ms of i-PI, PLUMED and outputs "
            "(1.29 × the model; so3k_driver_calls.json, the last run, written 2026-12-07T07:53:20Z)") in text


def test_status_shows_each_trajectory_s_newest_frame_as_the_full_reader_sees_it(remd_study):
    from so3k_driver.sampling import peptide
    from so3k_driver.sampling.analysis import ipi_outputs

    rows = study_status.newest_frames(remd_study)
    systems = ipi_outputs.find_systems(remd_study)
    assert [row["system"] for row in rows] == ["T-0", "T-1"] and len(systems) == 2
    for row, (_, trajectory) in zip(rows, systems):
        symbols, frames = ipi_outputs.read_xyz_frames(trajectory)  # every frame, parsed from the start
        backbone = peptide.find_backbone(ipi_outputs.atomic_numbers_of(symbols), frames[0])
        helical = peptide.helical_residues(peptide.dihedrals(frames[-1], backbone.phi_atoms()),
                                           peptide.dihedrals(frames[-1], backbone.psi_atoms()))
        first, last = backbone.end_to_end_atoms()
        assert row["step"] == 24 and row["residues"] == 3 and len(row["helix_map"]) == 3
        assert row["helix_map"] == "".join("H" if h else "-" for h in helical)
        # Ac-Ala3-NHMe has one i→i+4 pair (acetyl O, C-cap H) and two i→i+3 pairs
        assert (row["alpha_hbonds_possible"], row["three_ten_hbonds_possible"]) == (1, 2)
        assert row["three_ten_hbonds"] == int(peptide.helix_hbonds(frames[-1], backbone, span=3).sum())
        assert row["end_to_end_A"] == pytest.approx(float(peptide.distance(frames[-1], first, last)), abs=0.005)
    text = "\n".join(study_status.status_lines(study_status.study_status(remd_study)))
    assert "Newest frame of each trajectory (one configuration through the temperatures" in text


def test_the_newest_frame_is_read_from_the_end_and_a_cut_frame_is_skipped(tmp_path):
    from so3k_driver.sampling.analysis import ipi_outputs

    frame = lambda step, x: f"2\n# CELL(abcABC): 1 1 1 90 90 90 Step: {step} Bead: 0\nH {x} 0 0\nH {x + 0.74} 0 0\n"
    path = tmp_path / "sim.pos_0.xyz"
    path.write_text("".join(frame(10 * k, float(k)) for k in range(2000)) + "2\n# Step: 20000\nH 5.0 0")
    step, positions = ipi_outputs.read_last_xyz_frame(path, 2)
    assert step == 19990 and positions.tolist() == [[1999.0, 0.0, 0.0], [1999.74, 0.0, 0.0]]
    path.write_text("2\n# Step: 0\nH 0 0")
    assert ipi_outputs.read_last_xyz_frame(path, 2) is None


def test_status_of_a_running_and_of_a_killed_piece(remd_study, tmp_path):
    import shutil

    from so3k_driver.sampling.analysis.report import run_history

    study = tmp_path / "copy"
    shutil.copytree(remd_study, study)
    pieces.record_start(study, 24, 100, "ala3-xtb")  # a piece that never recorded its end
    with study_held_elsewhere(study) as holder:
        record = study_status.study_status(study)
        assert record["running_by"].startswith(f"process {holder.pid}")
        assert record["running_piece"]["first_step"] == 24 and record["running_piece"]["ps_per_hour"] is None
        assert record["pieces_killed"] == 0
        assert f"running: process {holder.pid}" in "\n".join(study_status.status_lines(record))
        # so3k analyze of a study while it runs: the running piece is not a killed one
        history = run_history(study)
        assert history["pieces"]["killed"] == 0
        assert ("3 pieces logged in pieces.jsonl (the last still running, not counted below): 24 steps"
                in history["line"])
    record = study_status.study_status(study)  # its process is gone: that piece was killed
    assert record["running_by"] is None and "running_piece" not in record
    assert (record["pieces"], record["pieces_killed"]) == (3, 1)
    assert "(1 ended without a record: killed)" in "\n".join(study_status.status_lines(record))
    history = run_history(study)
    assert history["pieces"]["killed"] == 1 and "still running" not in history["line"]
    assert "3 pieces logged in pieces.jsonl (1 killed before they could stop): 24 steps" in history["line"]


def test_so3k_sample_status_prints_text_or_json_and_refuses_a_non_study_in_one_line(remd_study, tmp_path, capsys):
    assert so3k(["sample", "status", str(remd_study)]) == 0
    assert "REMD+METAD 2 × 42 atoms" in capsys.readouterr().out
    assert so3k(["sample", "status", str(remd_study), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 24
    assert so3k(["sample", "status", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "is not a study folder" in error[0]
