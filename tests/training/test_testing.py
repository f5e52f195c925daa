"""`so3k test` (training/testing.py): errors of a model on labelled data."""

import json

import ase.io
import numpy as np

from conftest import REPO
from so3k_driver.cli import main
from so3k_driver.evaluation.potential import Potential
from so3k_driver.sampling.plumed_inputs import bundled_structure
from so3k_driver.training.testing import test_model as errors_on_data  # not a test itself

STUDENT = REPO / "docs" / "results" / "so3lr_student_v3" / "student_v4_epoch7.so3k"  # SO3LR-type: long-range terms


def test_all_pair_labels_are_matched_only_with_all_pairs(tmp_path, capsys):
    """An SO3LR-type model's own all-pairs labels of the 55 Å extended chain: zero error with
    --lr-cutoff 0, not with the 12 Å default (the charges beyond 12 Å are left out)."""
    atoms = ase.io.read(bundled_structure("Ac-Ala15-NHMe_ext.xyz"))
    result = Potential.load(str(STUDENT), dtype="float64", lr_cutoff=None).evaluate(atoms.numbers, atoms.positions)
    labelled = atoms.copy()
    labelled.info["energy"] = float(np.reshape(result.energy, -1)[0])
    labelled.arrays["forces"] = np.reshape(result.forces, (-1, 3))
    path = tmp_path / "labels.extxyz"
    ase.io.write(path, labelled, format="extxyz")

    exact = errors_on_data(str(STUDENT), str(path), dtype="float64", lr_cutoff=None)
    assert exact["forces_mae_eV_per_A"] < 1e-8 and exact["energy_mae_eV"] < 1e-8
    cut = errors_on_data(str(STUDENT), str(path), dtype="float64")
    assert cut["energy_mae_eV"] > 1e-3 and cut["forces_mae_eV_per_A"] > 1e-6

    assert main(["test", str(STUDENT), str(path), "--dtype", "float64", "--lr-cutoff", "0", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["forces_mae_eV_per_A"] < 1e-8
    assert set(printed["forces_by_element"]) == {"H", "C", "N", "O"}
    assert sum(e["atoms"] for e in printed["forces_by_element"].values()) == len(atoms)
