"""What a killed run leaves (last lines cut mid-way) is read without the cut line, never a traceback."""

import numpy as np
import pytest

from so3k_driver.ipi.properties import read_properties
from so3k_driver.sampling.analysis.ipi_outputs import read_xyz_frames
from so3k_driver.sampling.analysis.replica_exchange import read_swaps
from so3k_driver.sampling.analysis.plumed_files import read_plumed

PROPERTIES = ("# column   1     --> step : The current simulation time step.\n"
              "# column   2     --> potential{electronvolt} : The physical system potential energy.\n"
              "0 -1.5\n1 -1.25\n2 -1.")


def test_properties_hills_exchanges_and_trajectories_cut_mid_line(tmp_path):
    (tmp_path / "sim.out").write_text(PROPERTIES)
    assert read_properties(tmp_path / "sim.out")["step"].tolist() == [0, 1]
    (tmp_path / "HILLS").write_text("#! FIELDS time e2e sigma_e2e height biasf\n"
                                    "100 10.0 0.5 1.0 10\n200 11.0 0.5 0.9 10\n300 1")
    assert read_plumed(tmp_path / "HILLS")["time"].tolist() == [100, 200]
    (tmp_path / "sim.remd_idx").write_text("2 0 1\n4 1 0\n6 1")
    steps, permutations = read_swaps(tmp_path)
    assert steps.tolist() == [2, 4] and permutations.tolist() == [[0, 1], [1, 0]]
    frame = "2\n# Step: {step}\nC 0.0 0.0 0.0\nH 1.0 0.0 0.0\n"
    (tmp_path / "sim.pos_0.xyz").write_text(frame.format(step=0) + frame.format(step=1)[:-8])
    symbols, frames = read_xyz_frames(tmp_path / "sim.pos_0.xyz")
    assert symbols == ["C", "H"] and frames.shape == (1, 2, 3)
    np.testing.assert_allclose(frames[0, 1], [1.0, 0.0, 0.0])


def test_an_exchange_log_with_no_swap_yet_reads_as_none_accepted(tmp_path):
    """i-PI creates PREFIX.remd_idx at the start and writes a line per accepted swap: a short run may
    have none (so3k analyze stopped with a reshape error)."""
    (tmp_path / "sim.remd_idx").write_text("")
    assert [len(a) for a in read_swaps(tmp_path)] == [0, 0]
    (tmp_path / "sim.remd_idx").write_text("6 1")  # only a cut line
    assert [len(a) for a in read_swaps(tmp_path)] == [0, 0]


def test_a_run_without_ensemble_temperature_is_one_series_at_its_mean_kinetic_temperature(tmp_path):
    """The shipped nvt.xml and nve_spectrum.xml write only the instantaneous temperature: grouping by it
    made every frame a temperature of its own (8001 one-frame series, minutes per plot)."""
    from so3k_driver.errors import UserError
    from so3k_driver.sampling.analysis.ipi_outputs import demultiplex, sampling_temperatures

    kinetic = [290.0, 310.5, 301.25, 298.0]
    header = ("# column   1     --> step : The current simulation time step.\n"
              "# column   2     --> time{picosecond} : The elapsed simulation time.\n"
              "# column   3     --> temperature{kelvin} : The current temperature.\n"
              "# column   4     --> potential{electronvolt} : The physical system potential energy.\n")
    rows = "".join(f"{k} {0.001 * k} {t} {-1.0 - k}\n" for k, t in enumerate(kinetic))
    (tmp_path / "sim.out").write_text(header + rows)
    frame = "2\n# Step: {step}\nC 0.0 0.0 0.0\nH 1.09 0.0 {z}\n"
    (tmp_path / "sim.pos_0.xyz").write_text("".join(frame.format(step=k, z=0.01 * k) for k in range(4)))
    symbols, series, breakages = demultiplex(tmp_path)
    assert len(series) == 1 and not breakages
    assert series[0].temperature == pytest.approx(299.9)  # mean of 290, 310.5, 301.25, 298 = 299.94
    assert series[0].positions.shape == (4, 2, 3) and series[0].time.tolist() == [0.0, 0.001, 0.002, 0.003]
    # REMD's column wins when present; a file with neither is one line naming it
    remd = sampling_temperatures({"ensemble_temperature": np.array([300.0, 350.0]), "temperature": np.ones(2)}, "x")
    assert remd.tolist() == [300.0, 350.0]
    with pytest.raises(UserError, match="sim.out: its properties have neither"):
        sampling_temperatures({"step": np.arange(3)}, tmp_path / "sim.out")
