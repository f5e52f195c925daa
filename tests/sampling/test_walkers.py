"""Multiple walkers: N systems at one temperature building one metadynamics bias together (PLUMED's
multiple walkers), from the settings through the inputs to a real i-PI + PLUMED run, its extension and
``so3k analyze`` pooling the walkers."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from so3k_driver.errors import UserError
from so3k_driver.ipi.recovery import plumed_outputs
from so3k_driver.sampling.analysis.ipi_outputs import read_properties
from so3k_driver.sampling.analysis.plumed_files import read_plumed
from so3k_driver.sampling.plumed_inputs import bundled_structure
from so3k_driver.sampling.settings import MetadSettings, StudySettings
from so3k_driver.units import KJ_PER_MOL_IN_EV

SO3K = [sys.executable, "-m", "so3k_driver.cli"]
BACKBONE = MetadSettings(cv="backbone", pace=10, colvar_stride=5)


def so3k(*arguments, timeout=300):
    return subprocess.run(SO3K + [str(a) for a in arguments], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("changes, message", [
    ({"walkers": 0}, "walkers must be an integer >= 1, got 0"),
    ({"walkers": 2, "temperatures": (300.0, 350.0)}, "temperatures (K) with several walkers must be one temperature"),
    ({"walkers": 2, "metad": MetadSettings(cv="none")}, "metad cv with several walkers must be a biased CV"),
])
def test_walkers_need_one_temperature_and_a_bias(changes, message):
    fields = {"structure": "x.xyz", "model": "default", "temperatures": (300.0,), "steps": 10, "metad": BACKBONE}
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        StudySettings(**{**fields, **changes})


def test_an_older_study_without_walkers_has_one(tmp_path):
    settings = StudySettings(structure="x.xyz", model="default", temperatures=(300.0,), steps=10)
    record = json.loads(settings.to_json())
    del record["walkers"]
    (tmp_path / "study.json").write_text(json.dumps(record))
    assert StudySettings.load(tmp_path).walkers == 1 and StudySettings.load(tmp_path).systems == 1


def test_the_checkpoint_names_each_walkers_own_hills_file(tmp_path):
    for k in range(2):
        (tmp_path / f"plumed_W{k}.dat").write_text(
            f"metad: METAD ARG=phi2,psi2 PACE=10 FILE=HILLS WALKERS_N=2 WALKERS_ID={k} WALKERS_RSTRIDE=10\n"
            f"PRINT ARG=phi2 STRIDE=5 FILE=COLVAR.W{k}  # FILE=NOT_THIS in a comment\n")
    root = ET.fromstring("<simulation>" + "".join(
        f"<ffplumed name='plumed{k}'><plumed_dat>{tmp_path / f'plumed_W{k}.dat'}</plumed_dat>"
        f"<plumed_step>40</plumed_step></ffplumed>" for k in range(2)) + "</simulation>")
    assert sorted(plumed_outputs(root, str(tmp_path))) == sorted(
        (str(tmp_path / name), 40) for name in ("HILLS.0", "COLVAR.W0", "HILLS.1", "COLVAR.W1"))


def hill_lines(path):
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def bias_of(hills, phi, psi, until):
    """Σ of the well-tempered hills (heights as PLUMED wrote them) laid until PLUMED time ``until``, at
    (phi, psi), kJ/mol; torsions periodic."""
    total = 0.0
    for h in hills:
        laid = h["time"] <= until
        dphi = (phi - h["phi2"][laid] + np.pi) % (2 * np.pi) - np.pi
        dpsi = (psi - h["psi2"][laid] + np.pi) % (2 * np.pi) - np.pi
        total += np.sum(h["height"][laid] * np.exp(-dphi**2 / (2 * h["sigma_phi2"][laid]**2)
                                                    - dpsi**2 / (2 * h["sigma_psi2"][laid]**2)))
    return total


def test_three_walkers_share_one_bias_extend_and_are_analysed_together(tmp_path):
    pytest.importorskip("plumed")
    study = tmp_path / "walkers"
    init = so3k("sample", "init", bundled_structure("Ac-Ala3-NHMe_ext.xyz"), "--model", "default",
                "--temperatures", 300, "--walkers", 3, "--metad", "backbone", "--steps", 40, "--timestep", 1,
                "--output-stride", 5, "--metad-pace", 10, "--metad-height", 2, "--out", study)
    assert init.returncode == 0, init.stderr
    assert "NVT, 3 walkers at 300 K" in init.stdout
    for k in range(3):
        assert f"FILE=HILLS WALKERS_N=3 WALKERS_ID={k} WALKERS_RSTRIDE=10" in (study / f"plumed_W{k}.dat").read_text()

    run = so3k("sample", "run", study)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "3 walkers, one bias" in run.stderr + run.stdout
    first_hills = [hill_lines(study / f"HILLS.{k}") for k in range(3)]
    assert all(len(hills) == 4 for hills in first_hills)  # 40 steps / PACE 10, one file per walker
    # Each walker is biased by every walker's hills: at its last COLVAR record its bias lies between what its
    # own hills laid so far give there (a walker alone) and what all walkers' hills give, well above the
    # former (the others' newest hills arrive only every WALKERS_RSTRIDE = 10 steps, so not at the latter).
    hills = [read_plumed(study / f"HILLS.{k}") for k in range(3)]
    for k in range(3):
        colvar = read_plumed(study / f"COLVAR.W{k}")
        phi, psi, bias, until = colvar["phi2"][-1], colvar["psi2"][-1], colvar["metad.bias"][-1], colvar["time"][-1]
        own, together = bias_of([hills[k]], phi, psi, until), bias_of(hills, phi, psi, until)
        assert together - own > 0.5 and own + 0.25 * (together - own) < bias <= together + 1e-3, (k, own, bias, together)

    extended = so3k("sample", "run", study, "--steps", 60)
    assert extended.returncode == 0, extended.stderr[-3000:]
    for k in range(3):
        hills_now = hill_lines(study / f"HILLS.{k}")
        assert len(hills_now) == 6 and hills_now[:4] == first_hills[k]

    analysis = so3k("analyze", study)
    assert analysis.returncode == 0, analysis.stderr[-3000:]
    summary = json.loads((study / "analysis" / "summary.json").read_text())
    assert summary["walkers"] == 3 and [t["temperature_K"] for t in summary["temperatures"]] == [300.0]
    assert summary["hills"] == {"HILLS.0": 6, "HILLS.1": 6, "HILLS.2": 6}
    paths = summary["walker_paths"]
    assert [p["walker"] for p in paths] == ["W-0", "W-1", "W-2"]
    assert all(p["frames"] == 13 for p in paths)  # steps 0..60, every 5
    assert all(p["end_to_end_min_A"] <= min(p["end_to_end_first_A"], p["end_to_end_last_A"]) for p in paths)
    fes = json.loads((study / "analysis" / "free_energy.json").read_text())
    assert fes["colvar"] == "COLVAR.W0…W2 (3 walkers pooled)"
    assert fes["frames_total"] == 3 * 12  # 60 steps / COLVAR stride 5, per walker
    assert "3 walkers at one temperature" in (study / "analysis" / "summary.md").read_text()

    # The unbiased averages weight each trajectory frame by the bias i-PI reports for it (ensemble_bias, eV):
    # that is PLUMED's metad.bias of the same walker, which PLUMED records one step later (kJ/mol).
    for k in range(3):
        properties = read_properties(study / f"W-{k}_sim.out")
        colvar = read_plumed(study / f"COLVAR.W{k}")
        records = {int(t): b for t, b in zip(colvar["time"], colvar["metad.bias"])}
        pairs = np.array([(v / KJ_PER_MOL_IN_EV, records[int(s) + 1])
                          for s, v in zip(properties["step"], properties["ensemble_bias"]) if int(s) + 1 in records])
        assert len(pairs) >= 10 and pairs[:, 1].max() > 2.0, pairs
        assert np.abs(pairs[:, 0] - pairs[:, 1]).mean() < 0.2 * pairs[:, 1].mean(), pairs
    averages = json.loads((study / "analysis" / "reweighted_observables.json").read_text())["temperatures"]
    assert [a["temperature_K"] for a in averages] == [300.0]
    assert 1 <= averages[0]["effective_frames"] <= averages[0]["frames_kept"] < averages[0]["frames"]
    assert all(0.0 <= averages[0]["observables"][name][kind] <= 1.0 for name in ("helix_torsion", "helix_hbond")
               for kind in ("reweighted", "first_half", "second_half", "biased"))
    assert (study / "analysis" / "reweighted_helix.png").stat().st_size > 10_000
    shares = json.loads((study / "analysis" / "reweighted_observables.json").read_text())["weight_share_by_walker"]
    assert list(shares) == ["W-0", "W-1", "W-2"] and sum(shares.values()) == pytest.approx(1.0, abs=1e-3)


def test_walker_records_are_pooled_in_time_order_keeping_the_walkers_order_within_a_time():
    from so3k_driver.sampling.analysis.plumed_files import pooled

    first = {"time": np.array([1.0, 6.0, 11.0]), "phi2": np.array([0.1, 0.2, 0.3]), "only_here": np.zeros(3)}
    second = {"time": np.array([1.0, 6.0]), "phi2": np.array([-0.1, -0.2])}
    merged = pooled([first, {}, second])  # a walker that has not written yet is skipped
    assert sorted(merged) == ["phi2", "time"]  # only the columns every walker has
    np.testing.assert_array_equal(merged["time"], [1.0, 1.0, 6.0, 6.0, 11.0])
    np.testing.assert_array_equal(merged["phi2"], [0.1, -0.1, 0.2, -0.2, 0.3])
    assert pooled([{}, {}]) == {}
