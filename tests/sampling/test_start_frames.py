"""Studies whose replicas or walkers start from different frames of one structure file: which frame each
system takes, what the study folder holds, and a real i-PI + PLUMED run whose walkers start where asked."""

import json
import subprocess
import sys

import ase.io
import numpy as np
import pytest

from so3k_driver.errors import UserError
from so3k_driver.sampling.analysis.plumed_files import read_plumed
from so3k_driver.sampling.peptide import dihedrals, find_backbone
from so3k_driver.sampling.plumed_inputs import bundled_structure
from so3k_driver.sampling.run import prepare, start_frame_indices
from so3k_driver.sampling.settings import MetadSettings, StudySettings

SO3K = [sys.executable, "-m", "so3k_driver.cli"]


@pytest.mark.parametrize("frames, systems, expected", [
    (1, 8, None),              # one frame: every system starts there
    (10, 1, (9,)),             # one system: the last frame, as ASE reads a trajectory
    (8, 8, tuple(range(8))),   # one frame each
    (10, 3, (0, 5, 9)),        # spread evenly, first and last included; 4.5 rounds up
    (4, 3, (0, 2, 3)),
    (101, 5, (0, 25, 50, 75, 100)),
])
def test_the_systems_start_from_frames_spread_evenly_over_the_file(frames, systems, expected):
    assert start_frame_indices(frames, systems) == expected


def test_fewer_frames_than_systems_is_a_one_line_error():
    with pytest.raises(UserError, match="starts.xyz has 3 frames for 8 systems .* at least 8"):
        start_frame_indices(3, 8, "starts.xyz")


def perturbed_frames(count, seed=7, scale=0.15):
    """The bundled extended Ac-Ala3-NHMe, then copies with every atom displaced by up to ``scale`` Å."""
    first = ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz"))
    rng = np.random.default_rng(seed)
    frames = [first]
    for _ in range(count - 1):
        frame = first.copy()
        frame.positions += rng.uniform(-scale, scale, frame.positions.shape)
        frames.append(frame)
    return frames


def backbone_torsions(atoms):
    """(phi, psi) of every residue in rad, as PLUMED's TORSION gives them."""
    backbone = find_backbone(atoms.numbers, atoms.positions)
    return (np.radians(dihedrals(atoms.positions, backbone.phi_atoms())),
            np.radians(dihedrals(atoms.positions, backbone.psi_atoms())))


def test_a_several_frame_file_gives_each_walker_its_own_start(tmp_path):
    frames = perturbed_frames(5)
    ase.io.write(tmp_path / "starts.xyz", frames)
    settings = StudySettings(structure=str(tmp_path / "starts.xyz"), model="default", temperatures=(300.0,),
                             steps=10, walkers=3, metad=MetadSettings(cv="backbone", pace=5, colvar_stride=5))
    prepare(tmp_path / "study", settings)
    study = tmp_path / "study"
    assert StudySettings.load(study).start_frames == (0, 2, 4)
    assert json.loads((study / "study.json").read_text())["start_frames"] == [0, 2, 4]
    for k, index in enumerate((0, 2, 4)):
        assert np.allclose(ase.io.read(study / f"init_{k}.xyz").positions, frames[index].positions, atol=1e-6)
    assert np.allclose(ase.io.read(study / "init.xyz").positions, frames[0].positions, atol=1e-6)
    xml = (study / "input.xml").read_text()
    assert "<file mode='xyz'> init_IDX.xyz </file>" in xml


def test_a_one_frame_file_writes_no_per_system_starts(tmp_path):
    settings = StudySettings(structure=str(bundled_structure("Ac-Ala3-NHMe_ext.xyz")), model="default",
                             temperatures=(300.0, 350.0), steps=10, metad=MetadSettings(cv="none"))
    prepare(tmp_path / "study", settings)
    assert StudySettings.load(tmp_path / "study").start_frames is None
    assert not list((tmp_path / "study").glob("init_*.xyz"))
    assert "<file mode='xyz'> init.xyz </file>" in (tmp_path / "study" / "input.xml").read_text()


def test_frames_of_different_molecules_are_refused_before_anything_is_written(tmp_path):
    frames = perturbed_frames(2)
    del frames[1][-1]
    ase.io.write(tmp_path / "mixed.xyz", frames)
    settings = StudySettings(structure=str(tmp_path / "mixed.xyz"), model="default", temperatures=(300.0, 350.0),
                             steps=10, metad=MetadSettings(cv="none"))
    with pytest.raises(UserError, match=r"starting frames \[0, 1\] are not all the same molecule"):
        prepare(tmp_path / "study", settings)
    assert not (tmp_path / "study").exists()


def angle_difference(a, b):
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def test_walkers_start_where_the_file_says_in_a_real_run(tmp_path):
    """PLUMED's first COLVAR record of walker k holds the torsions of frame k, one 1 fs step on (i-PI's first
    bias call comes after the first step): within 0.03 rad of its own start, while the two starts differ by
    up to 0.19 rad."""
    pytest.importorskip("plumed")
    frames = perturbed_frames(2)
    ase.io.write(tmp_path / "starts.xyz", frames)
    study = tmp_path / "walkers"
    init = subprocess.run(SO3K + ["sample", "init", str(tmp_path / "starts.xyz"), "--model", "default",
                                  "--temperatures", "300", "--walkers", "2", "--metad", "backbone", "--steps", "10",
                                  "--timestep", "1", "--output-stride", "5", "--metad-pace", "5", "--out", str(study)],
                          capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr
    assert "starting from frames 0, 1 of" in init.stdout
    run = subprocess.run(SO3K + ["sample", "run", str(study)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    torsions = [backbone_torsions(frame) for frame in frames]
    for k in range(2):
        colvar = read_plumed(study / f"COLVAR.W{k}")
        first = np.array([[colvar[f"phi{r}"][0] for r in (1, 2, 3)], [colvar[f"psi{r}"][0] for r in (1, 2, 3)]])
        to_own, to_other = (np.abs(angle_difference(first, np.array(torsions[j]))).max() for j in (k, 1 - k))
        assert to_own < 0.03 and to_other > 0.1, (k, to_own, to_other)


def test_i_pi_expands_a_replica_exchange_template_to_one_start_file_per_temperature(tmp_path, monkeypatch):
    """i-PI's own <system_template> code (labels IDX, TEMP and the bias weights) gives replica k the file
    init_k.xyz, which holds frame k, at temperature k."""
    import contextlib
    import io

    from ipi.inputs.system import InputSysTemplate
    from ipi.utils.io.inputs.io_xml import xml_parse_file
    from ipi.utils.units import unit_to_internal

    frames = perturbed_frames(3)
    ase.io.write(tmp_path / "starts.xyz", frames)
    temperatures = (300.0, 350.0, 400.0)
    prepare(tmp_path / "study", StudySettings(structure=str(tmp_path / "starts.xyz"), model="default",
                                              temperatures=temperatures, steps=10, metad=MetadSettings(cv="backbone")))
    monkeypatch.chdir(tmp_path / "study")
    with open("input.xml") as handle:
        simulation = xml_parse_file(handle).fields[0][1]
    template = InputSysTemplate()
    template.parse(next(value for key, value in simulation.fields if key == "system_template"))
    with contextlib.redirect_stdout(io.StringIO()):  # i-PI prints every generated system
        systems = template.fetch()
    assert [s.prefix for s in systems] == ["T-0", "T-1", "T-2"]
    for k, system in enumerate(systems):
        positions = dict(system.init.queue)["positions"]
        assert positions.value == f"init_{k}.xyz"
        assert np.allclose(ase.io.read(positions.value).positions, frames[k].positions, atol=1e-6)
        assert system.ensemble.temp == pytest.approx(unit_to_internal("temperature", "kelvin", temperatures[k]))
