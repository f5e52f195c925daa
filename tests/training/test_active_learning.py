"""Committee files from the command line and selection of the frames the committee disagrees on most."""

from __future__ import annotations

import subprocess
import sys

import ase.io
import numpy as np
import pytest
from ase import Atoms
from conftest import tiny_model_config
from physics_suite import bundled_molecule

from so3k_driver.evaluation.potential import Potential
from so3k_driver.io.model_files import save_model
from so3k_driver.model.forces import initial_parameters

CONFIG = tiny_model_config()


def so3k(*args, cwd):
    return subprocess.run([sys.executable, "-m", "so3k_driver.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.mark.slow
def test_create_a_committee_and_select_its_most_uncertain_frames(tmp_path):
    for seed in range(3):
        save_model(tmp_path / f"m{seed}.so3k", CONFIG, initial_parameters(CONFIG, seed))
    created = so3k("committee", "create", "m0.so3k", "m1.so3k", "m2.so3k", "-o", "committee.so3k", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    numbers, positions = bundled_molecule()
    rng = np.random.default_rng(0)
    scales = [0.01, 0.3, 0.02, 0.2, 0.05]  # larger distortions leave the region the members agree on
    frames = [Atoms(numbers=numbers, positions=positions + rng.normal(scale=s, size=positions.shape))
              for s in scales]
    ase.io.write(tmp_path / "traj.extxyz", frames)
    selected = so3k("committee", "select", "committee.so3k", "traj.extxyz", "-n", "2", "-o", "picked.extxyz",
                    cwd=tmp_path)
    assert selected.returncode == 0, selected.stderr
    picked = ase.io.read(tmp_path / "picked.extxyz", index=":")
    committee = Potential.load(str(tmp_path / "committee.so3k"), dtype="float32")
    spread = [committee.evaluate(f.numbers, f.positions).extras["force_uncertainty"][0].max() for f in frames]
    assert [a.info["source_frame"] for a in picked] == list(np.argsort(spread)[::-1][:2])
    assert picked[0].info["force_uncertainty_eV_per_A"] >= picked[1].info["force_uncertainty_eV_per_A"]
    single = so3k("committee", "select", "m0.so3k", "traj.extxyz", "-o", "x.extxyz", cwd=tmp_path)
    assert single.returncode == 2 and "not a committee" in single.stderr
