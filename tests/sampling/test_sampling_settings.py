"""Study settings (validated, immutable, saved and read back), the generated files' freshness,
the one properties-file reader and the one bond graph."""

import dataclasses

import numpy as np
import pytest

from conftest import REPO
from so3k_driver.errors import UserError
from so3k_driver.sampling.settings import MetadSettings, StudySettings, parse_temperatures

VALID = dict(structure="mol.xyz", model="ala3-xtb", temperatures=(300.0, 400.0), steps=100)


def test_temperature_ranges_are_geometric_lists_or_one_value():
    assert parse_temperatures("300:450:4") == (300.0, 343.4, 393.1, 450.0)  # K, rounded to 0.1 K
    assert parse_temperatures("300:450:8")[1] == pytest.approx(300 * 1.5 ** (1 / 7), abs=0.05)
    assert parse_temperatures("300,340,385") == (300.0, 340.0, 385.0)
    assert parse_temperatures("310") == (310.0,)
    for bad in ("300:450", "450:300:4", "300:450:1", "hot", "300:450:x"):
        with pytest.raises(UserError, match=bad):
            parse_temperatures(bad)


@pytest.mark.parametrize("field, value", [
    ("structure", ""), ("model", ""), ("temperatures", ()), ("temperatures", (300.0, -1.0)),
    ("temperatures", (400.0, 300.0)), ("temperatures", "300:200:3"), ("steps", 0), ("steps", 2.5),
    ("timestep_fs", 0.0), ("timestep_fs", 50.0), ("thermostat_tau_fs", -1.0), ("exchange_stride", 0),
    ("output_stride", 0), ("backend", "mpi"), ("dtype", "float16"), ("seed", -1), ("lr_cutoff", 0.0),
    ("lr_cutoff", -12.0), ("model_fingerprint", "ac112d40579e876"), ("model_fingerprint", "AC112D40579E876E"),
    ("model_fingerprint", "ac112d40579e876g")])
def test_each_bad_study_field_is_a_user_error_naming_the_value(field, value):
    with pytest.raises(UserError) as error:
        StudySettings(**{**VALID, field: value})
    message = str(error.value)
    assert repr(value) in message or str(value) in message


def test_a_study_uses_all_pairs_unless_told_and_an_older_study_keeps_its_12_angstrom_cutoff(tmp_path):
    """Gas phase: SO3LR's long-range terms over all pairs (a 55 Å chain reaches far beyond 12 Å). A
    study.json written before the setting existed ran with the drivers' 12 Å and resumes with it."""
    assert StudySettings(**VALID).lr_cutoff is None
    StudySettings(**VALID, lr_cutoff=10.0).save(tmp_path)
    assert StudySettings.load(tmp_path).lr_cutoff == 10.0
    StudySettings(**VALID).save(tmp_path)
    text = (tmp_path / "study.json").read_text()
    assert '"lr_cutoff": null' in text and StudySettings.load(tmp_path).lr_cutoff is None
    (tmp_path / "study.json").write_text(text.replace('"lr_cutoff": null,', "").replace(', "lr_cutoff": null', ""))
    assert "lr_cutoff" not in (tmp_path / "study.json").read_text().split('"units"')[0]
    assert StudySettings.load(tmp_path).lr_cutoff == 12.0


@pytest.mark.parametrize("field, value", [
    ("cv", "rmsd"), ("height", 0.0), ("sigma", -0.5), ("pace", 0), ("bias_factor", 1.0), ("grid_max", 0.0),
    ("colvar_stride", 0)])
def test_each_bad_metadynamics_field_is_a_user_error_naming_the_value(field, value):
    with pytest.raises(UserError, match=repr(value).replace(".", r"\.")):
        MetadSettings(**{field: value})


def test_settings_are_frozen_and_round_trip_through_study_json(tmp_path):
    settings = StudySettings(**{**VALID, "temperatures": "300:450:3"}, metad=MetadSettings(cv="backbone", sigma=0.35))
    assert settings.temperatures == (300.0, 367.4, 450.0) and settings.replica_exchange
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.steps = 5
    settings.save(tmp_path)
    assert StudySettings.load(tmp_path) == settings
    assert '"temperatures": "K"' in (tmp_path / "study.json").read_text()  # units written beside the values
    (tmp_path / "study.json").write_text((tmp_path / "study.json").read_text().replace('"steps": 100', '"steps": -4'))
    with pytest.raises(UserError, match="-4"):
        StudySettings.load(tmp_path)
    with pytest.raises(UserError, match="study.json"):
        StudySettings.load(tmp_path / "elsewhere")


def test_committed_generated_files_match_their_generator():
    from so3k_driver.sampling import bundled_inputs

    assert bundled_inputs.stale(REPO) == [], "run: python -m so3k_driver.sampling.bundled_inputs"


def test_a_stale_generated_file_is_reported(tmp_path):
    from so3k_driver.sampling import bundled_inputs

    bundled_inputs.write(tmp_path)
    assert bundled_inputs.stale(tmp_path) == []
    path = tmp_path / "plumed" / "ala15_end_to_end_metad.dat"
    path.write_text(path.read_text().replace("PACE=50", "PACE=60"))
    (tmp_path / "ipi_inputs" / "plumed_remd_T3.dat").unlink()
    assert bundled_inputs.stale(tmp_path) == ["plumed/ala15_end_to_end_metad.dat", "ipi_inputs/plumed_remd_T3.dat"]
    assert bundled_inputs.main(["--check", "--root"]) == 2  # usage error


def test_the_shipped_remd_metad_input_lists_metad_before_remd():
    """The i-PI 3.3.1 workaround is written by the generator, so the shipped file has it too."""
    text = (REPO / "ipi_inputs" / "remd_metad.xml").read_text()
    assert text.index("<smotion mode='metad'>") < text.index("<smotion mode='remd'>")


PROPERTIES_HEADER = """# column   1     --> step : The current simulation time step.
# column   2     --> time{picosecond} : The elapsed simulation time.
# cols.    3-5   --> kinetic_tens{electronvolt} : kinetic tensor diagonal.
# column   6     --> temperature{kelvin} : The current temperature.
"""


def test_properties_reader_names_columns_and_drops_a_line_cut_by_a_kill(tmp_path):
    from so3k_driver.ipi.properties import read_last_record, read_properties

    path = tmp_path / "sim.out"
    path.write_text(PROPERTIES_HEADER + "0 0.0 1 2 3 300.0\n10 0.005 4 5 6 310.0\n20 0.01 7 8")  # killed mid-line
    columns = read_properties(path)
    np.testing.assert_array_equal(columns["step"], [0, 10])
    np.testing.assert_array_equal(columns["time"], [0.0, 0.005])  # ps, unit stripped from the name
    np.testing.assert_array_equal(columns["kinetic_tens"], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(columns["temperature"], [300.0, 310.0])
    assert read_last_record(path) == {"step": 10.0, "time": 0.005, "kinetic_tens": 4.0, "temperature": 310.0}
    path.write_text(PROPERTIES_HEADER)
    assert read_properties(path)["step"].shape == (0,) and read_last_record(path) is None
    path.write_text("1 2 3\n")
    with pytest.raises(ValueError, match="header"):
        read_properties(path)


def test_prepare_records_the_model_file_as_an_absolute_path(tmp_path, monkeypatch):
    """A study started later from its own folder must find a model given relative to where it was prepared."""
    import shutil

    from so3k_driver.sampling.run import prepare

    shutil.copy(REPO / "so3k_driver" / "data" / "ala3_xtb.so3k", tmp_path / "student.so3k")
    shutil.copy(REPO / "so3k_driver" / "data" / "Ac-Ala3-NHMe_ext.xyz", tmp_path / "ala3.xyz")
    monkeypatch.chdir(tmp_path)
    prepare("study", StudySettings(structure="ala3.xyz", model="student.so3k", temperatures="300", steps=10,
                                   metad=MetadSettings(cv="none")))
    assert StudySettings.load(tmp_path / "study").model == str(tmp_path / "student.so3k")
    prepare("study2", StudySettings(structure="ala3.xyz", model="ala3-xtb", temperatures="300", steps=10,
                                    metad=MetadSettings(cv="none")))
    assert StudySettings.load(tmp_path / "study2").model == "ala3-xtb"


def test_metad_hill_width_defaults_to_the_cvs_own_unit():
    """Å for end-to-end, rad for backbone, H-bonds for helix: one default per CV, for commands and library."""
    assert [MetadSettings(cv=cv).sigma for cv in ("end-to-end", "backbone", "helix")] == [0.5, 0.35, 0.25]
    assert MetadSettings(cv="backbone", sigma=0.2).sigma == 0.2


def test_strides_are_stated_as_simulated_time_at_the_study_time_step():
    metad = MetadSettings(cv="helix-torsions", pace=125, colvar_stride=50)
    at_3fs = StudySettings(structure="x.xyz", model="default", temperatures=(300.0, 400.0), steps=10,
                           timestep_fs=3.0, exchange_stride=50, output_stride=250, metad=metad)
    assert at_3fs.strides_in_time() == ("frames every 0.75 ps, an exchange tried per pair every 0.15 ps on average, "
                                        "a hill every 0.375 ps, COLVAR every 0.15 ps")
    plain_md = dataclasses.replace(at_3fs, temperatures=(300.0,), timestep_fs=2.0, metad=MetadSettings(cv="none"))
    assert plain_md.strides_in_time() == "frames every 0.5 ps"
