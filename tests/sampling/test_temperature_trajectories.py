"""Per-temperature trajectories of a run (ipi_outputs.write_temperature_trajectories, so3k analyze
--trajectories): frames follow a temperature, in time order, in Å."""

import ase.io
import numpy as np
from test_end_states import write_run

from so3k_driver.sampling.analysis.ipi_outputs import ReplicaSeries, write_temperature_trajectories


def test_each_temperature_gets_its_frames_in_time_order_with_what_they_are(tmp_path):
    rng = np.random.default_rng(0)
    series = [ReplicaSeries(t, np.array([0.5, 1.0, 1.5]), rng.normal(size=(3, 3, 3)), np.array([-1.0, -2.0, -3.0]),
                            np.array([0.0, 0.1, 0.2])) for t in (300.0, 322.7)]
    paths = write_temperature_trajectories(tmp_path, ["O", "H", "H"], series)
    assert [p.name for p in paths] == ["trajectory_300K.extxyz", "trajectory_322.7K.extxyz"]
    for path, s in zip(paths, series):
        frames = ase.io.read(path, ":")
        np.testing.assert_allclose([f.positions for f in frames], s.positions, atol=1e-6)
        assert [f.info["time_ps"] for f in frames] == [0.5, 1.0, 1.5]
        assert {f.info["temperature_K"] for f in frames} == {s.temperature}
        assert [f.info["potential_eV"] for f in frames] == [-1.0, -2.0, -3.0]
        assert frames[0].get_chemical_symbols() == ["O", "H", "H"]


def test_so3k_analyze_trajectories_writes_the_run_in_angstrom(tmp_path):
    from so3k_driver.cli.main import main as so3k

    write_run(tmp_path)  # one system at 300 K, positions{angstrom}
    assert so3k(["analyze", str(tmp_path), "--trajectories"]) == 0
    frames = ase.io.read(tmp_path / "analysis" / "trajectory_300K.extxyz", ":")
    original = ase.io.read(tmp_path / "sim.pos_0.xyz", ":")
    assert len(frames) == len(original) == 5
    np.testing.assert_allclose(frames[-1].positions, original[-1].positions, atol=1e-5)
