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


def test_labels_record_their_long_range_cutoff_and_test_and_train_follow_it(tmp_path, capsys):
    """Labels made by `so3k label` with all pairs say so (lr_cutoff_A=all): `so3k test` then uses all
    pairs without being told, warns when told 12 Å, and training with 12 Å refuses before any work."""
    import pytest

    from so3k_driver.evaluation.frames import write_extxyz
    from so3k_driver.training.labelling import ModelLabeller, label_with_model
    from so3k_driver.training.settings import TrainSettings
    from so3k_driver.training.trainer import prepare

    atoms = ase.io.read(bundled_structure("Ac-Ala15-NHMe_ext.xyz"))
    shaken = atoms.copy()
    shaken.rattle(0.02, seed=1)
    labelled = label_with_model([atoms, shaken], ModelLabeller(str(STUDENT), lr_cutoff=None), quiet=True)
    path = tmp_path / "labels.extxyz"
    write_extxyz(labelled, path)
    assert ase.io.read(path).info["lr_cutoff_A"] == "all"

    followed = errors_on_data(str(STUDENT), str(path), dtype="float64")
    assert followed["lr_cutoff_A"] == "all" and followed["warnings"] == []
    assert followed["forces_mae_eV_per_A"] < 1e-6 and followed["energy_mae_eV"] < 1e-6  # extxyz rounding

    assert main(["test", str(STUDENT), str(path), "--dtype", "float64", "--lr-cutoff", "12", "--json"]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["energy_mae_eV"] > 1e-3  # what the warning is about
    assert main(["test", str(STUDENT), str(path), "--dtype", "float64", "--lr-cutoff", "12"]) == 0
    printed = capsys.readouterr()
    assert "long range: 12 Å cutoff" in printed.out
    assert printed.err.startswith("warning: ") and "labelled with all pairs" in printed.err
    assert len(printed.err.strip().splitlines()) == 1

    with pytest.raises(ValueError, match="lr_cutoff=null"):
        prepare(TrainSettings(data=str(path), init_from=str(STUDENT), lr_cutoff=12.0, num_train=1, num_valid=1,
                              output_dir=str(tmp_path / "train"), progress=False))
    assert not (tmp_path / "train").exists()
    frames = ase.io.read(path, ":")
    frames[1].info["lr_cutoff_A"] = 12.0
    ase.io.write(tmp_path / "mixed.extxyz", frames, format="extxyz")
    with pytest.raises(ValueError, match="record different long-range cutoffs"):
        prepare(TrainSettings(data=str(tmp_path / "mixed.extxyz"), init_from=str(STUDENT), lr_cutoff=None,
                              num_train=1, num_valid=1, output_dir=str(tmp_path / "train"), progress=False))
    assert not (tmp_path / "train").exists()


def test_a_written_dataset_keeps_its_labels_long_range_cutoff(tmp_path):
    from so3k_driver.training.data import load_dataset, write_extxyz

    atoms = ase.io.read(bundled_structure("Ac-Ala3-NHMe_ext.xyz"))
    atoms.info.update(energy=-1.0, lr_cutoff_A=10.0)
    atoms.arrays["forces"] = np.zeros((len(atoms), 3))
    ase.io.write(tmp_path / "a.extxyz", [atoms, atoms], format="extxyz")
    data = load_dataset(tmp_path / "a.extxyz")
    assert data.labels_lr_cutoff == 10.0 and data.subset([1]).labels_lr_cutoff == 10.0
    assert load_dataset(write_extxyz(data, tmp_path / "b.extxyz")).labels_lr_cutoff == 10.0

    silent = atoms.copy()
    del silent.info["lr_cutoff_A"]
    ase.io.write(tmp_path / "joined.extxyz", [silent, atoms, silent], format="extxyz")
    assert load_dataset(tmp_path / "joined.extxyz").labels_lr_cutoff == 10.0  # the silent frames share it
    ase.io.write(tmp_path / "silent.extxyz", [silent], format="extxyz")
    assert load_dataset(tmp_path / "silent.extxyz").labels_lr_cutoff == "unrecorded"
    other = atoms.copy()
    other.info["lr_cutoff_A"] = "all"
    ase.io.write(tmp_path / "mixed.extxyz", [atoms, silent, other], format="extxyz")
    assert load_dataset(tmp_path / "mixed.extxyz").labels_lr_cutoff == "mixed"
    other.info["lr_cutoff_A"] = "10"
    ase.io.write(tmp_path / "same.extxyz", [atoms, other], format="extxyz")
    assert load_dataset(tmp_path / "same.extxyz").labels_lr_cutoff == 10.0  # compared as numbers
    other.info["lr_cutoff_A"] = "far"
    ase.io.write(tmp_path / "bad.extxyz", [other], format="extxyz")
    import pytest

    from so3k_driver.errors import UserError
    with pytest.raises(UserError, match="lr_cutoff_A must be a cutoff in Å or 'all', got 'far'"):
        load_dataset(tmp_path / "bad.extxyz")
