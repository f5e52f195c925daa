"""sampling/run.py change_model / ``so3k sample run --model``: a study continued with another model
(e.g. a student retrained on the study's frames) runs on with it from its newest restart, and
study.json says which model ran which steps."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import SO3KRATES_RANDOM
from so3k_driver.io.model_files import absolute_model_spec
from so3k_driver.sampling import plumed_inputs, run as sampling_run
from so3k_driver.sampling.analysis import ipi_outputs
from so3k_driver.sampling.settings import MetadSettings, StudySettings

pytestmark = pytest.mark.shared


def refusal_of_sample_run(*args: str, timeout: float) -> str:
    """``so3k sample run ARGS`` in its own process must refuse in one line with exit status 2; that line."""
    result = subprocess.run([sys.executable, "-m", "so3k_driver.cli", "sample", "run", *args],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_a_study_continues_with_another_model_and_records_the_change(tmp_path):
    structure = plumed_inputs.bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    settings = StudySettings(structure=str(structure), model="ala3-xtb", temperatures=(300.0,), steps=10,
                             output_stride=1, metad=MetadSettings(cv="none"), backend="direct")
    sampling_run.prepare(tmp_path, settings)
    assert sampling_run.run_study(tmp_path).last_step == 10

    sampling_run.change_model(tmp_path, SO3KRATES_RANDOM)
    piece = sampling_run.run_study(tmp_path, total_steps=20)
    assert (piece.first_step, piece.last_step) == (10, 20)
    record = json.loads((tmp_path / "study.json").read_text())
    assert record["model"] == absolute_model_spec(SO3KRATES_RANDOM)
    assert record["earlier_models"] == [{"model": "ala3-xtb", "until_step": 10}]
    assert json.loads((tmp_path / sampling_run.PES_CONFIG).read_text())["model"] == record["model"]
    # The two models' energies differ by far more than 10 steps of MD move them: the jump shows
    # which model computed which step.
    properties = ipi_outputs.read_properties(tmp_path / "sim.out")
    steps, potential = properties["step"].astype(int), properties["potential"]
    assert steps.tolist() == list(range(21))
    before, after = potential[steps <= 10], potential[steps > 10]
    assert np.ptp(before) < 1.0 and np.ptp(after) < 1.0 and abs(after[0] - before[-1]) > 10.0  # eV

    # The same model again changes nothing; StudySettings round-trips the record.
    assert sampling_run.change_model(tmp_path, SO3KRATES_RANDOM).earlier_models == (
        {"model": "ala3-xtb", "until_step": 10},)
    assert StudySettings.load(tmp_path).earlier_models == ({"model": "ala3-xtb", "until_step": 10},)
    # what `so3k analyze --reference` records as the frames' samplers
    assert StudySettings.load_if_present(tmp_path).sampling_models == ("ala3-xtb", record["model"])
    assert StudySettings.load_if_present(tmp_path / "plain_run") is None
    # and what the analysis summary says
    from so3k_driver.sampling.analysis.report import run_history

    line = run_history(tmp_path)["line"]
    assert line.startswith(f"Model: ala3-xtb (steps 0–10), then {record['model']} (from step 10). 2 pieces logged")


def test_a_model_that_cannot_be_loaded_is_refused_in_one_line_and_nothing_changes(tmp_path):
    structure = plumed_inputs.bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    settings = StudySettings(structure=str(structure), model="ala3-xtb", temperatures=(300.0,), steps=10,
                             metad=MetadSettings(cv="none"), backend="direct")
    sampling_run.prepare(tmp_path, settings)
    before = (tmp_path / "study.json").read_text(), (tmp_path / sampling_run.PES_CONFIG).read_text()
    refusal = refusal_of_sample_run(str(tmp_path), "--model", str(tmp_path / "missing.so3k"), timeout=120)
    assert "missing.so3k" in refusal
    assert ((tmp_path / "study.json").read_text(), (tmp_path / sampling_run.PES_CONFIG).read_text()) == before


def test_a_model_changed_in_place_is_refused_until_the_change_is_made_deliberately(tmp_path):
    """The study records its model's fingerprint: a model file overwritten in place (a training run's
    export, a package update's bundled default) must not change a study's physics without a trace."""
    from so3k_driver.io.model_files import flatten, load_model, model_fingerprint, save_model, unflatten

    structure = plumed_inputs.bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    config, params, header = load_model("ala3-xtb")
    model = tmp_path / "student.so3k"
    save_model(model, config, params)
    study = tmp_path / "study"
    settings = StudySettings(structure=str(structure), model=str(model), temperatures=(300.0,), steps=10,
                             metad=MetadSettings(cv="none"), backend="direct")
    sampling_run.prepare(study, settings)
    recorded = StudySettings.load(study).model_fingerprint
    assert recorded == model_fingerprint(str(model)) == model_fingerprint("ala3-xtb")

    flat = flatten(params)
    first = sorted(flat)[0]
    flat[first] = flat[first] * 1.01
    save_model(model, config, unflatten(flat))  # the same path, other parameters
    assert model_fingerprint(str(model)) != recorded
    before = (study / "study.json").read_text()
    refusal = refusal_of_sample_run(str(study), timeout=300)
    assert "no longer the model this study ran with" in refusal and "--model" in refusal
    assert (study / "study.json").read_text() == before and not (study / "RESTART").exists()

    # saying so continues with the model as it is now, and the record shows the change at step 0
    settings = sampling_run.change_model(study, str(model))
    assert settings.model_fingerprint == model_fingerprint(str(model))
    assert settings.earlier_models == ({"model": str(model), "until_step": 0},)


def test_a_study_begun_with_the_old_default_before_fingerprints_must_name_its_model(tmp_path):
    """A study from before fingerprints, on the bundled 'default' (v6 until 2026-12-04, then v10, v13), cannot
    tell which student it ran with: it stops in one line until --model names one."""
    structure = plumed_inputs.bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    settings = StudySettings(structure=str(structure), model="default", temperatures=(300.0,), steps=10,
                             metad=MetadSettings(cv="none"), backend="direct")
    sampling_run.prepare(tmp_path, settings)
    record = json.loads((tmp_path / "study.json").read_text())
    record.pop("model_fingerprint")  # as written before fingerprints existed
    (tmp_path / "study.json").write_text(json.dumps(record))
    with pytest.raises(sampling_run.UserError, match="so3lr-student-v6"):
        sampling_run.run_study(tmp_path)
    settings = sampling_run.change_model(tmp_path, "so3lr-student-v6")
    assert settings.model == "so3lr-student-v6" and settings.earlier_models == ({"model": "default", "until_step": 0},)
    from so3k_driver.io.model_files import model_fingerprint
    assert settings.model_fingerprint == model_fingerprint("so3lr-student-v6") != model_fingerprint("default")


def test_a_study_begun_with_an_earlier_bundled_default_is_told_the_name_it_is_bundled_under_now(tmp_path):
    """The package's 'default' changed (v10 -> v13 on 2026-12-05) under a study that recorded v10's
    fingerprint: the one-line refusal names the bundled name that still holds v10, and nothing changes."""
    from so3k_driver.io.model_files import bundled_model_with_fingerprint, model_fingerprint

    v10 = model_fingerprint("so3lr-student-v10")
    assert v10 != model_fingerprint("default") and bundled_model_with_fingerprint(v10) == "so3lr-student-v10"
    assert bundled_model_with_fingerprint("0" * 16) is None
    structure = plumed_inputs.bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    settings = StudySettings(structure=str(structure), model="default", temperatures=(300.0,), steps=10,
                             metad=MetadSettings(cv="none"), backend="direct")
    sampling_run.prepare(tmp_path, settings)
    record = json.loads((tmp_path / "study.json").read_text())
    record["model_fingerprint"] = v10  # as a study begun on 2026-12-04 recorded it
    (tmp_path / "study.json").write_text(json.dumps(record))
    before = (tmp_path / "study.json").read_text()
    refusal = refusal_of_sample_run(str(tmp_path), timeout=300)
    assert "--model so3lr-student-v10" in refusal and "--model default" in refusal
    assert (tmp_path / "study.json").read_text() == before and not (tmp_path / "RESTART").exists()
    settings = sampling_run.change_model(tmp_path, "so3lr-student-v10")
    assert settings.model_fingerprint == v10 and settings.earlier_models == ({"model": "default", "until_step": 0},)


def test_a_finished_study_is_refused_before_its_model_is_loaded(tmp_path, monkeypatch):
    """Nothing left to run: the refusal needs no model (loading one took seconds), so none is loaded."""
    structure = plumed_inputs.bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    settings = StudySettings(structure=str(structure), model="ala3-xtb", temperatures=(300.0,), steps=10,
                             metad=MetadSettings(cv="none"), backend="direct")
    sampling_run.prepare(tmp_path, settings)
    (tmp_path / "RESTART").write_text("<simulation><step>10</step><total_steps>10</total_steps></simulation>")

    def no_loading(spec):
        raise AssertionError(f"loaded {spec} to refuse a finished study")

    monkeypatch.setattr(sampling_run, "model_fingerprint", no_loading)
    with pytest.raises(sampling_run.UserError, match="already at step 10 of 10"):
        sampling_run.run_study(tmp_path)
