"""A study folder that was copied or moved, or a resume kit unpacked elsewhere, runs on where it now is
(ipi_xml.relocate, sampling/run.py): nothing in it may point back to where it was made."""

import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from so3k_driver.ipi import ipi_xml
from so3k_driver.sampling import plumed_inputs, run as sampling_run
from so3k_driver.sampling.settings import MetadSettings, StudySettings


def test_paths_of_another_folder_point_into_this_one_and_the_pes_is_this_installations(tmp_path):
    for name in ("init.xyz", "plumed_T0.dat", "so3k_pes.json"):
        (tmp_path / name).write_text("x")
    elsewhere = "/no/such/place/run"
    original = tmp_path.parent / f"{tmp_path.name}_original"  # the folder this one was copied from
    original.mkdir()
    (original / "plumed_T0.dat").write_text("x")
    root = ET.fromstring(f"""<simulation>
      <ffdirect name='so3k'><pes>custom</pes>
        <pes_path>/old/venv/lib/python3.11/site-packages/so3k_driver/ipi/direct_pes.py</pes_path>
        <parameters>{{config: {elsewhere}/so3k_pes.json, verbosity: False}}</parameters></ffdirect>
      <ffdirect name='theirs'><pes_path>/opt/other/pes.py</pes_path><parameters>{{config: /x/y.json}}</parameters></ffdirect>
      <ffplumed name='p'><file mode='xyz'> {elsewhere}/init.xyz </file><plumed_dat>{original}/plumed_T0.dat</plumed_dat></ffplumed>
      <system><initialize><file mode='xyz'> init.xyz </file></initialize></system>
      <system><initialize><file mode='xyz'> {tmp_path}/init.xyz </file></initialize></system>
      <system><initialize><file mode='xyz'> {elsewhere}/missing.xyz </file></initialize></system>
    </simulation>""")
    changed = ipi_xml.relocate(root, str(tmp_path))
    texts = [e.text.strip() for e in root.iter("file")]
    assert texts == [f"{tmp_path}/init.xyz", "init.xyz", f"{tmp_path}/init.xyz", f"{elsewhere}/missing.xyz"]
    assert root.find("ffplumed/plumed_dat").text.strip() == f"{tmp_path}/plumed_T0.dat"  # the original's exists
    ours, theirs = root.findall("ffdirect")
    assert ours.find("pes_path").text.strip() == ipi_xml.DIRECT_PES_FILE
    assert ours.find("parameters").text.strip() == f"{{config: {tmp_path}/so3k_pes.json, verbosity: False}}"
    assert theirs.find("pes_path").text == "/opt/other/pes.py" and theirs.find("parameters").text == "{config: /x/y.json}"
    assert len(changed) == 4 and all(new.startswith(str(tmp_path)) or new == ipi_xml.DIRECT_PES_FILE
                                     for _, new in changed)
    assert ipi_xml.relocate(root, str(tmp_path)) == []  # a second pass has nothing left to do


@pytest.mark.shared
def test_a_moved_study_continues_where_it_now_is_and_a_copy_leaves_its_original_alone(tmp_path):
    """Made and run in one folder, then renamed: the continuation reads its files, writes its outputs and
    its model-call counts in the new folder, and the bias (HILLS) goes on. A copy continued beside its
    original touches none of the original's files."""
    made = tmp_path / "made_here"
    structure = plumed_inputs.bundled_structure("Ac-Ala3-NHMe_ext.xyz")
    settings = StudySettings(structure=str(structure), model="ala3-xtb", temperatures=(300.0,), steps=10,
                             output_stride=1, metad=MetadSettings(cv="backbone", pace=5, colvar_stride=1),
                             backend="direct")
    sampling_run.prepare(made, settings)
    assert sampling_run.run_study(made).last_step == 10
    assert str(made) not in (made / sampling_run.INPUT).read_text()  # a new study names no absolute folder
    hills_before = (made / "HILLS").read_text().count("\n")

    moved = tmp_path / "moved_there"
    made.rename(moved)
    piece = sampling_run.run_study(moved, total_steps=20)
    assert (piece.first_step, piece.last_step) == (10, 20)
    assert json.loads((moved / "so3k_driver_calls.json").read_text())["timed_calls"] >= 1
    assert not made.exists()
    assert (moved / "HILLS").read_text().count("\n") > hills_before
    assert str(made) not in (moved / "resume_from_step_10.xml").read_text()

    copy = tmp_path / "copy"
    shutil.copytree(moved, copy)
    originals = {path.name: path.read_bytes() for path in moved.iterdir() if path.is_file()}
    assert sampling_run.run_study(copy, total_steps=30).last_step == 30
    assert {path.name: path.read_bytes() for path in moved.iterdir() if path.is_file()} == originals
    assert json.loads((copy / "so3k_driver_calls.json").read_text()) != json.loads(originals["so3k_driver_calls.json"])
