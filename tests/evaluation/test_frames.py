"""Reading structure files (evaluation/frames.py): any ASE format in Å, i-PI trajectories in their units,
one-line errors; and `so3k eval` giving the same energy for the same structure in either unit."""

import json
import subprocess
import sys

import ase.io
import numpy as np
import pytest

from so3k_driver.errors import UserError
from so3k_driver.evaluation.frames import read_structure_frames
from so3k_driver.sampling.plumed_inputs import bundled_structure
from so3k_driver.units import BOHR_IN_ANGSTROM

ALA3 = bundled_structure("Ac-Ala3-NHMe_ext.xyz")


def ipi_trajectory(path, frames, what="positions", unit="atomic_unit", factor=1.0 / BOHR_IN_ANGSTROM):
    """Frames as i-PI writes an xyz trajectory: its CELL comment, then `what{unit}`, numbers in that unit."""
    lines = []
    for step, atoms in enumerate(frames):
        lines += [str(len(atoms)), f"# CELL(abcABC):  188.97261   188.97261   188.97261    90.00000    90.00000"
                                   f"    90.00000  Step:  {step:10d}  Bead:       0 {what}{{{unit}}}  cell{{atomic_unit}}"]
        lines += [f"{s:>2} {x:16.8e} {y:16.8e} {z:16.8e}" for s, (x, y, z)
                  in zip(atoms.get_chemical_symbols(), atoms.positions * factor)]
    path.write_text("\n".join(lines) + "\n")
    return path


def two_frames():
    first = ase.io.read(ALA3)
    second = first.copy()
    second.positions += 0.1
    return [first, second]


def test_i_pi_positions_in_atomic_units_come_back_in_angstrom_without_the_comment_words(tmp_path):
    frames = two_frames()
    read = read_structure_frames(ipi_trajectory(tmp_path / "sim.pos_0.xyz", frames))
    assert len(read) == 2
    for atoms, expected in zip(read, frames):
        np.testing.assert_allclose(atoms.positions, expected.positions, atol=1e-6)
        assert list(atoms.numbers) == list(expected.numbers) and atoms.info == {}
    # Written out again and read back, they stay in Å (no second conversion).
    ase.io.write(tmp_path / "again.extxyz", read, format="extxyz")
    np.testing.assert_allclose(read_structure_frames(tmp_path / "again.extxyz")[1].positions,
                               frames[1].positions, atol=1e-6)


def test_i_pi_positions_in_angstrom_and_centroids_in_nanometres_are_read_in_their_units(tmp_path):
    frames = two_frames()
    in_angstrom = ipi_trajectory(tmp_path / "a.xyz", frames, unit="angstrom", factor=1.0)
    in_nm = ipi_trajectory(tmp_path / "nm.xyz", frames, what="x_centroid", unit="nanometer", factor=0.1)
    for path in (in_angstrom, in_nm):
        np.testing.assert_allclose(read_structure_frames(path, index=-1)[0].positions, frames[1].positions, atol=1e-6)


def test_plain_files_are_read_as_they_are():
    atoms = read_structure_frames(ALA3)
    assert len(atoms) == 1
    np.testing.assert_allclose(atoms[0].positions, ase.io.read(ALA3).positions)


@pytest.mark.parametrize("suffix", [".xz", ".gz", ".bz2"])
def test_compressed_files_are_decompressed_once_before_ase_reads_them(tmp_path, monkeypatch, suffix):
    """ASE seeks back and forth in a decompressing stream, which decompresses from the start at every
    backward seek: reading all frames of an .extxyz.xz grew with their square (11 min for 1030 frames)."""
    import bz2
    import gzip
    import lzma

    frames = two_frames()
    for atoms in frames:
        atoms.info["energy_eV"] = float(atoms.positions.sum())
    plain = tmp_path / "frames.extxyz"
    ase.io.write(plain, frames, format="extxyz")
    packed = tmp_path / f"frames.extxyz{suffix}"
    opener = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}[suffix]
    with opener(packed, "wb") as handle:
        handle.write(plain.read_bytes())
    given = []
    original = ase.io.read
    monkeypatch.setattr(ase.io, "read", lambda path, *a, **k: given.append(str(path)) or original(path, *a, **k))
    read = read_structure_frames(packed)
    assert given and not any(path.endswith(suffix) for path in given)  # ASE never saw the compressed file
    assert [a.info["energy_eV"] for a in read] == [a.info["energy_eV"] for a in frames]
    np.testing.assert_allclose(np.stack([a.positions for a in read]), np.stack([a.positions for a in frames]))
    with pytest.raises(UserError, match="cannot read structure file .*broken.extxyz.xz") as error:
        (tmp_path / "broken.extxyz.xz").write_bytes(b"not xz at all")
        read_structure_frames(tmp_path / "broken.extxyz.xz")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("content, message", [
    (None, "structure file .*missing.xyz not found"),
    ("", "no frames in .*: the file is empty"),
    ("not a structure\n", "cannot read structure file"),
])
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "missing.xyz"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message) as error:
        read_structure_frames(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("what, unit", [("forces", "atomic_unit"), ("velocities", "atomic_unit"),
                                        ("f_centroid", "atomic_unit"), ("r_gyration", "atomic_unit"),
                                        ("kinetic_cv", "automatic"), ("x_centroid_even", "atomic_unit")])
def test_an_i_pi_trajectory_of_something_else_than_positions_is_refused(tmp_path, what, unit):
    path = ipi_trajectory(tmp_path / f"sim.{what}.xyz", two_frames(), what=what, unit=unit)
    with pytest.raises(UserError, match=f"is an i-PI trajectory of {what}, not of positions or x_centroid"):
        read_structure_frames(path)


def test_i_pi_automatic_units_are_atomic_units(tmp_path):
    path = ipi_trajectory(tmp_path / "auto.xyz", two_frames(), unit="automatic")
    np.testing.assert_allclose(read_structure_frames(path)[0].positions, two_frames()[0].positions, atol=1e-6)


def test_so3k_eval_gives_the_same_energy_for_a_structure_in_angstrom_and_in_i_pi_atomic_units(tmp_path):
    path = ipi_trajectory(tmp_path / "sim.pos_0.xyz", two_frames()[:1])
    energies = []
    for structure in (ALA3, path):
        result = subprocess.run([sys.executable, "-m", "so3k_driver.cli", "eval", "default", str(structure), "--json"],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        energies.append(json.loads(result.stdout.splitlines()[-1])["energy"])
    assert energies[0] == pytest.approx(energies[1], abs=1e-4)


def test_predict_frames_keeps_order_and_puts_each_extra_where_it_belongs():
    from conftest import tiny_model_config

    from so3k_driver.evaluation.frames import predict_frames
    from so3k_driver.evaluation.potential import Potential
    from so3k_driver.model.forces import initial_parameters, stack_parameters

    config = tiny_model_config()
    committee = Potential(config, stack_parameters([initial_parameters(config, seed) for seed in (0, 1)]),
                          dtype="float64", committee_size=2)
    ala3 = two_frames()
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    frames = [ala3[0], water, ala3[1]]  # two sizes, interleaved: batched by size, returned in input order
    predicted = predict_frames(committee, frames, batch_size=2, quiet=True)
    for atoms, original in zip(predicted, frames):
        alone = committee.evaluate_atoms(original)
        assert atoms.get_potential_energy() == pytest.approx(float(alone.energy[0]), abs=1e-9)
        np.testing.assert_allclose(atoms.get_forces(), alone.forces[0], atol=1e-9)
        np.testing.assert_allclose(atoms.arrays["force_uncertainty"], alone.extras["force_uncertainty"][0], atol=1e-9)
        assert atoms.arrays["committee_forces"].shape == (len(atoms), 6)  # (N, members, 3) flattened per atom
        assert atoms.info["energy_uncertainty"] == pytest.approx(float(alone.extras["energy_uncertainty"][0]))
        np.testing.assert_allclose(atoms.info["committee_energies"], alone.extras["committee_energies"][0])
        assert np.array_equal(atoms.positions, original.positions) and atoms is not original
    kept = predict_frames(committee, frames[:1], quiet=True, extras={"force_uncertainty": "spread"})[0]
    assert "spread" in kept.arrays and "committee_forces" not in kept.arrays and "energy_uncertainty" not in kept.info


def test_so3k_eval_output_writes_every_frame_with_the_energies_it_prints(tmp_path):
    path = ipi_trajectory(tmp_path / "sim.pos_0.xyz", two_frames())
    output = tmp_path / "out" / "predicted.extxyz"
    command = [sys.executable, "-m", "so3k_driver.cli", "eval", "default", str(path)]
    written = subprocess.run(command + ["-o", str(output), "--batch-size", "2"], capture_output=True, text=True,
                             timeout=300)
    assert written.returncode == 0, written.stderr
    assert f"wrote 2 frames to {output}" in written.stdout
    printed = subprocess.run(command + ["--json"], capture_output=True, text=True, timeout=300)
    records = [json.loads(line) for line in printed.stdout.splitlines()]
    frames = ase.io.read(output, ":")
    assert len(frames) == len(records) == 2
    for atoms, record, original in zip(frames, records, two_frames()):
        assert atoms.get_potential_energy() == pytest.approx(record["energy"], abs=1e-5)
        np.testing.assert_allclose(atoms.get_forces(), record["forces"], atol=1e-5)
        np.testing.assert_allclose(atoms.positions, original.positions, atol=1e-6)  # in Å, not bohr
        np.testing.assert_allclose(atoms.calc.results["charges"], record["charges"], atol=1e-6)
    both = subprocess.run(command + ["--json", "-o", str(output)], capture_output=True, text=True, timeout=60)
    assert both.returncode == 2 and "not allowed with" in both.stderr
