"""Reweighted free energies (sampling/analysis/free_energy.py): samples drawn under a known static bias
V(s) (so rbias = V) give back the true F; two halves of one distribution agree and of two different
ones do not; Ramachandran points land in the right named basin; basin free energies are -kT ln of
the true probabilities; `so3k analyze` of small synthetic study folders writes free_energy.json, and
an old run without metad.rbias gets one summary line instead."""

import json
from pathlib import Path

import numpy as np
import pytest

from so3k_driver.cli.main import main as so3k_main
from so3k_driver.sampling.analysis import free_energy as fe

KT_300 = fe.thermal_energy(300.0)  # kJ/mol
REPO = Path(__file__).resolve().parents[2]
ALA3 = REPO / "so3k_driver" / "data" / "Ac-Ala3-NHMe_ext.xyz"


def test_thermal_energy_is_R_T_in_kJ_per_mol():
    assert fe.thermal_energy(300.0) == pytest.approx(8.314462618e-3 * 300.0, rel=1e-5)


def sample_grid(rng, grid_edges, log_density, count):
    """count points drawn from exp(log_density) tabulated on a fine grid (one array of cell values per
    grid cell, edges per axis): a cell by its probability, then uniformly inside it. (count, D)."""
    p = np.exp(log_density - log_density.max()).ravel()
    cells = rng.choice(p.size, size=count, p=p / p.sum())
    index = np.unravel_index(cells, log_density.shape)
    return np.stack([e[i] + rng.random(count) * np.diff(e)[i] for e, i in zip(grid_edges, index)], axis=1)


def true_binned_free_energy(fine_edges, fine_f, edges, kT):
    """-kT ln(P_b / ΔV_b) of the exact density exp(-F/kT) (fine grid of cell values) in coarse bins."""
    fine_centres = [0.5 * (e[1:] + e[:-1]) for e in fine_edges]
    mesh = np.meshgrid(*fine_centres, indexing="ij")
    volume = np.prod(np.meshgrid(*[np.diff(e) for e in fine_edges], indexing="ij"), axis=0)
    weights = np.exp(-(fine_f - fine_f.min()) / kT) * volume
    p, _ = np.histogramdd(np.stack([m.ravel() for m in mesh], 1), bins=edges, weights=weights.ravel())
    return fe.free_energy(p / p.sum(), edges, kT)


def double_well(s):
    """kJ/mol on s in Å: wells at 3 and 7 Å (the one at 7 Å 2 kJ/mol higher), barrier about 10 kJ/mol."""
    return 10.0 * ((s - 5.0) ** 2 / 4.0 - 1.0) ** 2 + 0.5 * (s - 3.0)


def test_1d_reweighting_recovers_the_true_profile_under_a_known_bias():
    rng = np.random.default_rng(1)
    fine = [np.linspace(1.0, 9.0, 4001)]
    f_true = double_well(0.5 * (fine[0][1:] + fine[0][:-1]))
    bias = -0.8 * f_true                      # a well-tempered-like static bias (kJ/mol) that flattens F
    samples = sample_grid(rng, fine, -(f_true + bias) / KT_300, 200_000)
    rbias = np.interp(samples[:, 0], 0.5 * (fine[0][1:] + fine[0][:-1]), bias)
    edges = [np.linspace(1.0, 9.0, 41)]
    estimate = fe.reweighted_free_energy(samples, rbias, 300.0, edges, burn_in=0.0)
    expected = true_binned_free_energy(fine, f_true, edges, KT_300)
    region = expected - expected.min() < 12.0
    offset = np.mean((estimate.full - expected)[region])  # F is known up to a constant
    assert np.max(np.abs(estimate.full - expected - offset)[region]) < 0.3
    assert estimate.minimum[0] == pytest.approx(3.0, abs=0.3)  # Å
    # without the weights the barrier is gone: the check above can fail
    unweighted = fe.reweighted_free_energy(samples, np.zeros(len(samples)), 300.0, edges, burn_in=0.0)
    assert np.max(np.abs(unweighted.full - expected - np.mean((unweighted.full - expected)[region]))[region]) > 2.0


def torsion_surface(phi, psi):
    """kJ/mol on (φ, ψ) in rad: a minimum near (-1.4, 1.3) rad and a second one across the ψ = ±π seam."""
    return 4.0 * (1 + np.cos(phi + 1.4)) + 3.0 * (1 + np.cos(2 * (psi - 1.3))) + 1.5 * (1 + np.cos(psi - 1.3))


def test_2d_periodic_reweighting_recovers_the_true_surface():
    rng = np.random.default_rng(2)
    fine = [np.linspace(-np.pi, np.pi, 361)] * 2
    centres = 0.5 * (fine[0][1:] + fine[0][:-1])
    f_true = torsion_surface(*np.meshgrid(centres, centres, indexing="ij"))
    bias = -0.7 * f_true
    samples = sample_grid(rng, fine, -(f_true + bias) / KT_300, 400_000)
    rbias = -0.7 * torsion_surface(samples[:, 0], samples[:, 1])
    shifted = samples + 2 * np.pi * rng.integers(-1, 2, samples.shape)  # as PLUMED might print them, any period
    edges = [np.linspace(-np.pi, np.pi, 37)] * 2
    estimate = fe.reweighted_free_energy(fe.wrap_angle(shifted), rbias, 300.0, edges, burn_in=0.0)
    expected = true_binned_free_energy(fine, f_true, edges, KT_300)
    region = expected - expected.min() < 10.0
    offset = np.mean((estimate.full - expected)[region])
    assert np.max(np.abs(estimate.full - expected - offset)[region]) < 0.7
    assert np.mean(np.abs(estimate.full - expected - offset)[region]) < 0.2
    assert estimate.full.shape == (36, 36) and np.min(estimate.full) == 0.0


def test_wrap_angle_maps_every_period_into_minus_pi_to_pi():
    angles = np.array([-3 * np.pi + 0.1, -np.pi, 0.5, np.pi + 0.2, 7.0])
    wrapped = fe.wrap_angle(angles)
    assert np.all((wrapped >= -np.pi) & (wrapped < np.pi))
    np.testing.assert_allclose(np.cos(wrapped), np.cos(angles), atol=1e-12)
    np.testing.assert_allclose(np.sin(wrapped), np.sin(angles), atol=1e-12)


def test_burn_in_and_halves_split_the_frames():
    kept, first, second = fe.kept_frames(101, 0.1)
    assert (kept.start, kept.stop) == (10, 101)
    assert (first.start, first.stop, second.start, second.stop) == (10, 55, 55, 101)
    with pytest.raises(ValueError, match="burn-in"):
        fe.kept_frames(10, 1.0)


def test_two_halves_of_one_distribution_agree_and_of_two_do_not():
    rng = np.random.default_rng(3)
    edges = [np.linspace(-4.0, 4.0, 33)]
    same = rng.normal(0.0, 1.0, (100_000, 1))
    estimate = fe.reweighted_free_energy(same, np.zeros(len(same)), 300.0, edges, burn_in=0.1, cutoff=8.0)
    summary = estimate.summary
    assert summary.bins >= 20 and summary.missing_bins == 0
    assert summary.max_kJmol < 0.5 and summary.mean_kJmol < 0.15  # kJ/mol
    assert estimate.frames_burn_in == 10_000 and estimate.frames_halves == (45_000, 45_000)
    assert estimate.effective_frames[0] == pytest.approx(90_000)  # equal weights: every frame counts
    # a run that drifted: the second half sits 1 Å further out
    drifted = np.concatenate([rng.normal(0.0, 1.0, 50_000), rng.normal(1.0, 1.0, 50_000)])[:, None]
    moved = fe.reweighted_free_energy(drifted, np.zeros(len(drifted)), 300.0, edges, burn_in=0.0, cutoff=8.0)
    assert moved.summary.max_kJmol > 3.0
    # the per-bin difference is |F_first - F_second| on the common reference
    np.testing.assert_allclose(moved.difference[moved.region], np.abs(moved.first - moved.second)[moved.region])


def test_the_halves_share_the_full_runs_reference():
    """Each half normalised on its own, all shifted by the same constant: F_first - F_second = kT ln(P2/P1)."""
    samples = np.array([[0.5]] * 30 + [[1.5]] * 10 + [[0.5]] * 20 + [[1.5]] * 20)  # half 1: 3:1, half 2: 1:1
    estimate = fe.reweighted_free_energy(samples, np.zeros(80), 300.0, [np.array([0.0, 1.0, 2.0])], burn_in=0.0)
    np.testing.assert_allclose(estimate.full, [0.0, KT_300 * np.log(50 / 30)])
    np.testing.assert_allclose(estimate.first, [-KT_300 * np.log(0.75 / 0.625), -KT_300 * np.log(0.25 / 0.625)])
    np.testing.assert_allclose(estimate.first - estimate.second, [-KT_300 * np.log(0.75 / 0.5), -KT_300 * np.log(0.5)])


@pytest.mark.parametrize("phi, psi, name", [
    (-83, 73, "C7eq"), (-157, 165, "C5"), (175, 165, "C5"), (-160, -178, "C5"), (-75, 145, "PII"),
    (-65, -40, "alpha_R"), (-57, -47, "alpha_R"), (65, 35, "alpha_L"), (75, -60, "C7ax"), (75 + 360, -60, "C7ax"),
    (0, 0, None), (120, 120, None), (-150, -60, None)])
def test_named_basins_of_known_points(phi, psi, name):
    index = int(fe.assign_basins(phi, psi))
    assert (fe.RAMACHANDRAN_BASINS[index].name if index >= 0 else None) == name


def test_basin_table_regions_do_not_overlap():
    """Every grid point is in at most one basin and each basin is its own nearest region around its centre."""
    phi, psi = np.meshgrid(np.arange(-180, 180, 2.0), np.arange(-180, 180, 2.0))
    labels = fe.assign_basins(phi, psi)
    for i, basin in enumerate(fe.RAMACHANDRAN_BASINS):
        assert fe.assign_basins(basin.phi, basin.psi) == i
        assert np.any(labels == i)
    assert np.any(labels == -1)


def basin_mixture(rng, probabilities, sampled, per_half):
    """Frames around basin centres (spread 8°) with the given sampled counts per half; each frame's
    rbias = kT ln(p_B / q_B) so that the reweighted probabilities are exactly p. Returns (φ, ψ, rbias),
    two identical halves in shuffled order. Keys None = a point outside every basin, (0°, 0°)."""
    centres = {b.name: (b.phi, b.psi) for b in fe.RAMACHANDRAN_BASINS}
    centres[None] = (0.0, 0.0)
    names = [name for name, n in sampled.items() for _ in range(n)]
    q = {name: n / per_half for name, n in sampled.items()}
    half = []
    for name in names:
        phi, psi = centres[name]
        half.append((phi + rng.normal(0, 8), psi + rng.normal(0, 8), KT_300 * np.log(probabilities[name] / q[name])))
    half = np.array(half)
    frames = np.concatenate([half[rng.permutation(per_half)], half[rng.permutation(per_half)]])
    return frames[:, 0], frames[:, 1], frames[:, 2]


def test_basin_free_energies_are_minus_kT_ln_of_the_true_probabilities():
    rng = np.random.default_rng(4)
    p = {"C7eq": 0.55, "C5": 0.25, "alpha_R": 0.12, "C7ax": 0.05, "alpha_L": 0.003, None: 0.027}
    sampled = {"C7eq": 100, "C5": 100, "alpha_R": 100, "C7ax": 100, "alpha_L": 50, None: 50}  # a flattened run
    phi, psi, rbias = basin_mixture(rng, p, sampled, 500)
    records, reference = fe.basin_free_energies(phi, psi, rbias, 300.0, burn_in=0.0)
    by_name = {r.name: r for r in records}
    assert reference == "C7eq"
    for name in ("C7eq", "C5", "alpha_R", "C7ax"):
        r = by_name[name]
        assert r.found and r.fraction == pytest.approx(p[name])
        assert r.F_kJmol == pytest.approx(-KT_300 * np.log(p[name] / p["C7eq"]), abs=1e-9)
        assert r.F_first_half == pytest.approx(r.F_kJmol, abs=1e-9)  # identical halves
        assert r.half_difference == pytest.approx(0.0, abs=1e-9)
    assert not by_name["alpha_L"].found and by_name["alpha_L"].fraction == pytest.approx(0.003)  # < 0.5 %
    assert not by_name["PII"].found and by_name["PII"].F_kJmol is None


def test_a_basin_seen_in_one_half_only_has_no_half_difference():
    phi = np.array([-85.0] * 50 + [-155.0] * 50)  # C7eq in the first half, C5 in the second
    psi = np.array([75.0] * 50 + [160.0] * 50)
    records, reference = fe.basin_free_energies(phi, psi, np.zeros(100), 300.0, burn_in=0.0)
    by_name = {r.name: r for r in records}
    assert by_name["C7eq"].found and by_name["C7eq"].F_second_half is None and by_name["C7eq"].half_difference is None
    # the second half holds all its weight in C5, the full run half of it: -kT ln(1 / 0.5) on the full run's scale
    assert reference == "C7eq" and by_name["C5"].F_kJmol == pytest.approx(0.0, abs=1e-9)
    assert by_name["C5"].F_first_half is None and by_name["C5"].F_second_half == pytest.approx(-KT_300 * np.log(2))


def test_basin_history_settles_on_the_full_runs_basin_free_energies():
    """A run whose first kept part sits in C7eq only, then samples C7eq and C5 evenly under a bias that
    makes C5 four times less likely: F(C5) - F(C7eq) is undefined (NaN) before C5 is visited and
    tends to -kT ln(weights) at the end."""
    phi = np.array([-85.0] * 100 + [-85.0, -155.0] * 200)
    psi = np.array([75.0] * 100 + [75.0, 160.0] * 200)
    rbias = np.where(phi < -120, -KT_300 * np.log(4.0), 0.0)  # ln w = rbias / kT: each C5 frame counts 1/4
    ends, F = fe.basin_history(phi, psi, rbias, 300.0, burn_in=0.0, points=5)
    names = [b.name for b in fe.RAMACHANDRAN_BASINS]
    c7eq, c5 = names.index("C7eq"), names.index("C5")
    assert ends.tolist() == [99, 199, 299, 399, 499]
    assert np.isnan(F[0, c5]) and np.all(F[:, c7eq] == 0.0)  # C7eq holds the most weight: the reference
    weight_c7eq, weight_c5 = 100 + 200, 200 / 4
    assert F[-1, c5] == pytest.approx(-KT_300 * np.log(weight_c5 / weight_c7eq))
    records, _ = fe.basin_free_energies(phi, psi, rbias, 300.0, burn_in=0.0)
    assert F[-1, c5] == pytest.approx({r.name: r.F_kJmol for r in records}["C5"])


def test_basin_blocks_are_separate_and_show_a_basin_left_for_a_while():
    """Four blocks: C7eq and C5 under a bias that makes C5 four times less likely, except the third
    block, which never visits C5. Each block's F(C5) - F(C7eq) comes from its own frames only."""
    visit = np.array([-85.0, -155.0] * 50)
    stay = np.full(100, -85.0)
    phi = np.concatenate([visit, visit, stay, visit])
    psi = np.where(phi < -120, 160.0, 75.0)
    rbias = np.where(phi < -120, -KT_300 * np.log(4.0), 0.0)
    edges, F = fe.basin_blocks(phi, psi, rbias, 300.0, burn_in=0.0, blocks=4)
    names = [b.name for b in fe.RAMACHANDRAN_BASINS]
    c7eq, c5 = names.index("C7eq"), names.index("C5")
    assert edges.tolist() == [0, 100, 200, 300, 400]
    assert np.all(F[:, c7eq] == 0.0)
    expected = -KT_300 * np.log((50 / 4) / 50)
    assert F[[0, 1, 3], c5] == pytest.approx([expected] * 3) and np.isnan(F[2, c5])
    # the cumulative history still has a finite, slowly moving F(C5) at the end of block 3
    ends, history = fe.basin_history(phi, psi, rbias, 300.0, burn_in=0.0, points=4)
    assert np.isfinite(history[2, c5])


def test_the_half_difference_history_is_the_two_halves_test_of_each_shorter_run():
    """A run in C7eq only for its first 100 frames, then C7eq and C5 evenly: stopped early, the first half
    never saw C5 (NaN); later the halves disagree less and less; the last point is the full analysis."""
    phi = np.array([-85.0] * 100 + [-85.0, -155.0] * 200)
    psi = np.where(phi < -120, 160.0, 75.0)
    rbias = np.zeros(len(phi))
    ends, differences = fe.half_difference_history(phi, psi, rbias, 300.0, burn_in=0.0, points=5)
    names = [b.name for b in fe.RAMACHANDRAN_BASINS]
    c5 = names.index("C5")
    assert ends.tolist() == [99, 199, 299, 399, 499]
    assert np.isnan(differences[0, c5]) and np.isnan(differences[1, c5])  # the first half has no C5 yet
    assert differences[2, c5] > differences[3, c5] > differences[4, c5] > 0
    records, _ = fe.basin_free_energies(phi, psi, rbias, 300.0, burn_in=0.0)
    assert differences[-1, c5] == pytest.approx({r.name: r.half_difference for r in records}["C5"])
    with pytest.raises(ValueError, match="points must be an integer >= 1, got 0"):
        fe.half_difference_history(phi, psi, rbias, 300.0, points=0)


def test_two_blocks_give_the_halves_basin_differences():
    rng = np.random.default_rng(8)
    phi, psi, rbias = basin_mixture(rng, {"C7eq": 0.5, "C5": 0.3, "alpha_R": 0.2}, {"C7eq": 80, "C5": 60, "alpha_R": 60},
                                    200)
    phi, psi, rbias = phi + rng.normal(0, 3, len(phi)), psi, rbias + rng.normal(0, 0.5, len(phi))  # halves differ
    records, _ = fe.basin_free_energies(phi, psi, rbias, 300.0, burn_in=0.1)
    by_name = {r.name: r for r in records}
    _, F = fe.basin_blocks(phi, psi, rbias, 300.0, burn_in=0.1, blocks=2)
    names = [b.name for b in fe.RAMACHANDRAN_BASINS]
    for name in ("C5", "alpha_R"):
        k = names.index(name)
        assert F[0, k] == pytest.approx(by_name[name].F_first_half - by_name["C7eq"].F_first_half)
        assert F[1, k] == pytest.approx(by_name[name].F_second_half - by_name["C7eq"].F_second_half)
    with pytest.raises(ValueError, match="blocks must be an integer >= 2, got 1"):
        fe.basin_blocks(phi, psi, rbias, 300.0, blocks=1)


# --- so3k analyze on synthetic study folders -------------------------------------------------------


def write_study(folder: Path, cv: str, colvar_text: str, frames: int = 6, broken_from: int | None = None):
    """A one-temperature (300 K) metadynamics folder: study.json, plumed.dat, COLVAR, an empty HILLS,
    and i-PI outputs (sim.out, sim.pos_0.xyz) of frames copies of Ac-Ala3-NHMe, one every 25 steps of
    2 fs; from frame broken_from on, the last hydrogen is 20 Å away (the molecule broke apart)."""
    from so3k_driver.sampling.settings import MetadSettings, StudySettings

    folder.mkdir(parents=True, exist_ok=True)
    StudySettings(str(ALA3), "ala3-xtb", (300.0,), 1000, timestep_fs=2.0, metad=MetadSettings(cv=cv)).save(folder)
    arguments = {"backbone": "phi2,psi2", "helix": "hb"}.get(cv, "e2e")
    (folder / "plumed.dat").write_text(f"UNITS LENGTH=A ENERGY=kj/mol TIME=ps\nmetad: METAD ARG={arguments} PACE=10 "
                                       "HEIGHT=1 SIGMA=0.3 BIASFACTOR=8 TEMP=300 FILE=HILLS CALC_RCT\n")
    (folder / "HILLS").write_text("")
    (folder / "COLVAR").write_text(colvar_text)
    lines = ALA3.read_text().splitlines()
    atoms = lines[2: 2 + int(lines[0])]
    (folder / "sim.out").write_text(
        "# column   1     --> step : step\n# column   2     --> time{picosecond} : time\n"
        "# column   3     --> temperature{kelvin} : T\n# column   4     --> potential{electronvolt} : V\n"
        + "".join(f"{25 * k} {0.05 * k} 300 -74.0\n" for k in range(frames)))
    symbol, *xyz = atoms[-1].split()[:4]
    broken = atoms[:-1] + [symbol + " " + " ".join(f"{float(x) + 20:.5f}" for x in xyz)]
    (folder / "sim.pos_0.xyz").write_text("".join(
        f"{len(atoms)}\n# CELL(abcABC): 100 100 100 90 90 90 Step: {25 * k} Bead: 0 positions{{angstrom}}\n"
        + "\n".join(broken if broken_from is not None and k >= broken_from else atoms) + "\n" for k in range(frames)))


def colvar(fields, rows) -> str:
    header = "#! FIELDS " + " ".join(fields) + "\n#! SET min_phi2 -pi\n#! SET max_phi2 pi\n"
    return header + "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in rows)


def so3k(capsys, *args):
    """Run the command line in this process (a new interpreter costs seconds of imports): (status, out, err)."""
    status = so3k_main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_analyze_backbone_study_writes_basins(tmp_path, capsys):
    rng = np.random.default_rng(5)
    p = {"C7eq": 0.6, "C5": 0.3, "alpha_R": 0.1}
    phi, psi, rbias = basin_mixture(rng, p, {"C7eq": 300, "C5": 300, "alpha_R": 300}, 900)
    first = np.full(200, -85.0), np.full(200, 75.0), np.zeros(200)  # 200 frames of burn-in (10 % of 2000 after)
    phi, psi, rbias = (np.concatenate([a, b]) for a, b in zip(first, (phi, psi, rbias)))
    rows = np.column_stack([5.0 * np.arange(len(phi)), np.radians(phi), np.radians(psi), np.zeros(len(phi)), rbias])
    write_study(tmp_path / "study", "backbone", colvar(["time", "phi2", "psi2", "metad.bias", "metad.rbias"], rows))
    status, out, err = so3k(capsys, "analyze", str(tmp_path / "study"), "--out", str(tmp_path / "out"),
                            "--burn-in", "0.1")
    assert status == 0, err
    record = json.loads((tmp_path / "out" / "free_energy.json").read_text())
    assert record["cvs"] == ["phi2", "psi2"] and record["temperature_K"] == 300.0
    assert record["kT_kJmol"] == pytest.approx(KT_300, abs=1e-4)
    assert record["burn_in_frames"] == 200 and record["frames_used"] == 1800 and record["frames_halves"] == [900, 900]
    assert set(record["basins"]) == {"C7eq", "C5", "alpha_R"} and record["reference_basin"] == "C7eq"
    for name, probability in p.items():
        basin = record["basins"][name]
        assert basin["F_kJmol"] == pytest.approx(-KT_300 * np.log(probability / 0.6), abs=1e-3)
        assert basin["half_difference"] == pytest.approx(0.0, abs=1e-3)
    assert record["max_basin_half_difference_kJmol"] == pytest.approx(0.0, abs=1e-3)
    assert (tmp_path / "out" / "fes_phi_psi.png").stat().st_size > 10_000
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "## Free energy (reweighted metadynamics)" in summary and "| C7eq | 0.600 | 0.00 |" in summary
    history = record["basin_history"]
    assert history["time_unit"] == "ps" and history["time"][-1] == pytest.approx(5.0 * 1999 * 0.002)
    assert set(history["F_kJmol"]) == {"C7eq", "C5", "alpha_R"} and len(history["time"]) == 20
    assert history["F_kJmol"]["C5"][-1] == pytest.approx(record["basins"]["C5"]["F_kJmol"], abs=1e-3)
    assert (tmp_path / "out" / "fes_basin_history.png").stat().st_size > 10_000
    assert "As the run grew" in summary
    blocks = record["basin_blocks"]
    assert blocks["blocks"] == 4 and len(blocks["time_edges"]) == 5 and blocks["time_unit"] == "ps"
    assert blocks["time_edges"][0] == pytest.approx(5.0 * 200 * 0.002)  # the first kept frame
    assert blocks["F_kJmol"]["C7eq"] == [0.0] * 4 and blocks["spread_kJmol"]["C7eq"] == 0.0
    assert blocks["spread_kJmol"]["C5"] < 2.0  # one stationary distribution, 450 frames per block
    assert "In 4 separate blocks after the burn-in" in summary and "| alpha_R |" in summary
    halves = record["half_difference_history"]
    assert len(halves["time"]) == 10 and halves["time"][-1] == history["time"][-1]
    assert halves["largest_kJmol"][-1] == pytest.approx(record["max_basin_half_difference_kJmol"], abs=1e-3)
    assert halves["half_difference_kJmol"]["C5"][-1] == pytest.approx(record["basins"]["C5"]["half_difference"], abs=1e-3)
    assert "Largest basin half difference had the run stopped earlier" in summary


def test_analyze_end_to_end_study_writes_the_profile(tmp_path, capsys):
    rng = np.random.default_rng(6)
    e2e = rng.normal(12.0, 1.0, 3000)           # Å; the bias below makes the sampled peak sit at 12 Å ...
    rbias = -0.5 * KT_300 * (e2e - 12.0) ** 2   # ... while the unbiased one is narrower, still at 12 Å
    rows = np.column_stack([5.0 * np.arange(3000), e2e, np.full(3000, 5.0), np.zeros(3000), rbias])
    write_study(tmp_path / "study", "end-to-end", colvar(["time", "e2e", "rg", "metad.bias", "metad.rbias"], rows))
    status, out, err = so3k(capsys, "analyze", str(tmp_path / "study"), "--out", str(tmp_path / "out"))
    assert status == 0, err
    record = json.loads((tmp_path / "out" / "free_energy.json").read_text())
    assert record["cvs"] == ["e2e"] and record["cv_unit"] == "Å"
    assert record["minimum_A"] == pytest.approx(12.0, abs=0.5)
    assert record["burn_in_frames"] == 300 and record["frames_used"] == 2700
    profile = record["profile"]
    assert len(profile["e2e"]) == len(profile["F_kJmol"]) == len(profile["F_first_half"]) == 50
    h = record["half_difference"]
    assert h["cutoff_kJmol"] == 20.0 and 0 < h["mean_kJmol"] <= h["max_kJmol"] < 5.0
    assert (tmp_path / "out" / "fes_end_to_end.png").stat().st_size > 10_000
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "Minimum of F at" in summary
    history = record["half_difference_history"]  # the same test on the first 10 %, 20 %, ... of the run
    assert history["time_unit"] == "ps" and len(history["time"]) == 10
    assert history["time"][-1] == pytest.approx(5.0 * 2999 * 0.002)
    assert history["max_kJmol"][-1] == pytest.approx(h["max_kJmol"], abs=1e-3)
    assert history["mean_kJmol"][-1] == pytest.approx(h["mean_kJmol"], abs=1e-3)
    assert "Half difference of the profile (max / mean over its region) had the run stopped earlier" in summary


def test_the_profile_half_difference_history_shrinks_as_a_stationary_run_grows():
    """Independent samples of one distribution; the region is the well-sampled centre (F < 3 kJ/mol) so
    that it hardly changes with the run length: 16 times the frames, about a quarter of the noise."""
    rng = np.random.default_rng(11)
    e2e = rng.normal(12.0, 1.0, 32000)
    edges = [np.linspace(8.0, 16.0, 21)]
    ends, largest, mean = fe.profile_half_difference_history(e2e, np.zeros(len(e2e)), 300.0, edges, burn_in=0.0,
                                                            cutoff=3.0, points=16)
    assert ends[[0, -1]].tolist() == [1999, 31999] and len(ends) == 16
    full = fe.reweighted_free_energy(e2e, np.zeros(len(e2e)), 300.0, edges, burn_in=0.0, cutoff=3.0)
    assert largest[-1] == pytest.approx(full.summary.max_kJmol) and mean[-1] == pytest.approx(full.summary.mean_kJmol)
    assert mean[-1] < 0.5 * mean[0]


def test_a_helix_biased_study_gets_its_end_to_end_profile_reweighted(tmp_path, capsys):
    """Bias on the helix H-bonds: the end-to-end profile (the folding observable) is reweighted from it.
    Two equally sampled states, helix (hb 10, 23 Å) and extended (hb 0, 50 Å); the bias left on the
    extended frames weighs them 3x, so the unbiased helix population is 1/4 (F difference kT ln 3)."""
    rng = np.random.default_rng(7)
    helix = rng.random(4000) < 0.5
    hb = np.where(helix, rng.normal(10.0, 0.5, 4000), rng.normal(0.0, 0.5, 4000))
    e2e = np.where(helix, rng.normal(23.0, 1.0, 4000), rng.normal(50.0, 1.0, 4000))  # Å
    rbias = np.where(helix, 0.0, KT_300 * np.log(3.0))  # kJ/mol
    rows = np.column_stack([5.0 * np.arange(4000), hb, e2e, np.full(4000, 8.0), np.zeros(4000), rbias])
    write_study(tmp_path / "study", "helix", colvar(["time", "hb", "e2e", "rg", "metad.bias", "metad.rbias"], rows))
    status, out, err = so3k(capsys, "analyze", str(tmp_path / "study"), "--out", str(tmp_path / "out"))
    assert status == 0, err
    assert json.loads((tmp_path / "out" / "free_energy.json").read_text())["cvs"] == ["hb"]
    record = json.loads((tmp_path / "out" / "free_energy_end_to_end.json").read_text())
    assert record["cvs"] == ["e2e"] and record["cv_unit"] == "Å"
    distance, F = (np.array(record["profile"][k], float) for k in ("e2e", "F_kJmol"))
    weight = np.exp(-np.nan_to_num(F, nan=np.inf) / KT_300)
    assert weight[distance < 35].sum() / weight.sum() == pytest.approx(0.25, abs=0.02)
    assert record["minimum_A"] == pytest.approx(50.0, abs=1.5)
    assert (tmp_path / "out" / "fes_end_to_end.png").stat().st_size > 10_000
    assert "## Free energy along end-to-end distance (reweighted from the bias on hb)" in (
        tmp_path / "out" / "summary.md").read_text()


def test_analyze_old_run_without_rbias_says_so_in_one_line(tmp_path, capsys):
    rows = np.column_stack([5.0 * np.arange(100), np.linspace(10, 14, 100), np.full(100, 5.0), np.zeros(100)])
    write_study(tmp_path / "study", "end-to-end", colvar(["time", "e2e", "rg", "metad.bias"], rows))
    status, out, err = so3k(capsys, "analyze", str(tmp_path / "study"), "--out", str(tmp_path / "out"))
    assert status == 0, err
    assert "Traceback" not in err
    lines = [line for line in out.splitlines() if "no metad.rbias" in line]
    assert len(lines) == 1 and lines[0].startswith("No error estimate")
    assert not (tmp_path / "out" / "free_energy.json").exists()
    assert (tmp_path / "out" / "free_energy.png").exists()


def test_analyze_refuses_a_burn_in_outside_zero_to_one(tmp_path, capsys):
    write_study(tmp_path / "study", "end-to-end", colvar(["time", "e2e", "rg", "metad.bias", "metad.rbias"], []))
    status, out, err = so3k(capsys, "analyze", str(tmp_path / "study"), "--out", str(tmp_path / "out"),
                            "--burn-in", "1.5")
    assert status == 2 and "burn-in" in err and len(err.strip().splitlines()) == 1


def test_analyze_leaves_out_colvar_frames_after_a_breakage(tmp_path, capsys):
    """Frame 3 of 6 (0.15 ps = MD step 75 of 2 fs) and later are broken: COLVAR rows from step 75 on are dropped."""
    rng = np.random.default_rng(7)
    steps = np.linspace(0.0, 149.0, 1000)  # MD steps, the COLVAR time column under i-PI
    rows = np.column_stack([steps, rng.normal(12.0, 1.0, 1000), np.full(1000, 5.0), np.zeros(1000), np.zeros(1000)])
    write_study(tmp_path / "study", "end-to-end", colvar(["time", "e2e", "rg", "metad.bias", "metad.rbias"], rows),
                broken_from=3)
    status, out, err = so3k(capsys, "analyze", str(tmp_path / "study"), "--out", str(tmp_path / "out"))
    assert status == 0, err
    record = json.loads((tmp_path / "out" / "free_energy.json").read_text())
    assert record["frames_total"] == int(np.sum(steps < 75))
    assert "COLVAR frames from MD step 75 on (a configuration broke apart) are left out." in out


def test_rct_growth_of_a_settled_well_tempered_bias_matches_the_long_time_rate():
    """c(t) = kB T (γ - 1) ln(t / τ): the last quarter's slope equals kB T (γ - 1) / t at its mean time
    (to the curvature of ln over the quarter), i.e. ratio ≈ 1; a linear filling at 5× that rate gives ≈ 5."""
    from so3k_driver.sampling.analysis.free_energy_report import _rct_growth

    steps = np.arange(1, 100_001, 50, dtype=float)  # COLVAR time column in MD steps, 2 fs each: 200 ps
    k_delta_T = KT_300 * (8.0 - 1)
    settled = _rct_growth(steps, k_delta_T * np.log(steps / 10.0), 0.002, 300.0, 8.0)
    assert settled["per"] == "100 ps" and settled["ratio"] == pytest.approx(1.0, abs=0.02)
    t_mid_ps = steps[len(steps) * 3 // 4:].mean() * 0.002
    assert settled["long_time_rate_kJmol"] == pytest.approx(k_delta_T / t_mid_ps * 100, rel=1e-3)
    filling = _rct_growth(steps, 5 * settled["long_time_rate_kJmol"] * steps * 0.002 / 100, 0.002, 300.0, 8.0)
    assert filling["ratio"] == pytest.approx(5.0, rel=1e-3)
    assert "ratio" not in _rct_growth(steps, np.zeros_like(steps), 0.002, 300.0, None)  # no BIASFACTOR known


def test_metad_option_reads_the_metad_line_of_the_study_input(tmp_path):
    from so3k_driver.sampling.analysis import plumed_files

    (tmp_path / "plumed_W0.dat").write_text("phi2: TORSION ATOMS=11,17,19,21\n# METAD BIASFACTOR=3 in a comment\n"
                                            "metad: METAD ARG=phi2,psi2 PACE=250 BIASFACTOR=8.0 FILE=HILLS\n")
    assert plumed_files.metad_option(tmp_path, "BIASFACTOR") == "8.0"
    assert plumed_files.metad_arguments(tmp_path) == ["phi2", "psi2"]
    assert plumed_files.metad_option(tmp_path, "TEMP") is None
    assert plumed_files.metad_option(tmp_path / "missing", "ARG") is None
