"""Copy a finished training run into the package as the bundled ala3-xtb model.

  .venv/bin/python bench/package_ala3_xtb_model.py RUN_DIR [--spacing-fs 30] [--max-frames 80]

The run's training file, split sizes and split seed are read from the model's metadata and the
seeded split is recomputed (so3k_driver.training.data.split_indices). Frames that are neither
training frames nor early-stopping validation frames form the test split; of those, the ones from
trajectories sampled ``--spacing-fs`` apart (info ``spacing_fs``, see bench/make_ala3_xtb_data.py;
all of them if the file has no such info) are written, at most ``--max-frames``, to
so3k_driver/data/ala3_xtb_validation.xyz (eV, eV/Å). The errors recorded in the metadata
(``validation_errors``) are measured on exactly those shipped frames; the errors on the whole
test split and on the early-stopping validation split are recorded alongside. The force error on
the 5 MD22 frames (PBE+MBD, kcal/mol converted to eV) is recorded when the shared file exists.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ase.io
import numpy as np

from so3k_driver.io.model_files import load_model, save_model
from so3k_driver.training.data import load_dataset, split_indices, write_extxyz
from so3k_driver.training.testing import test_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "so3k_driver" / "data"
MD22 = ROOT / ".." / "shared" / "data" / "md22_Ac-Ala3-NHMe_5frames.xyz"


def main(run_dir: str, spacing_fs: float | None, max_frames: int) -> None:
    run = Path(run_dir)
    model_path = str(run / "model.so3k")
    config, params, header = load_model(model_path)
    metadata = dict(header["metadata"])
    hyper = metadata["hyperparameters"]
    data = load_dataset(hyper["data"], hyper["energy_unit"])
    train_idx, valid_idx = split_indices(len(data), hyper["num_train"], hyper["num_valid"], hyper["split_seed"])
    assert len(train_idx) == metadata["num_train"] and len(valid_idx) == metadata["num_valid"]
    test_idx = np.setdiff1d(np.arange(len(data)), np.concatenate([train_idx, valid_idx]))
    infos = [atoms.info for atoms in ase.io.read(hyper["data"], index=":")]
    if spacing_fs is not None and all("spacing_fs" in info for info in infos):
        shipped = [i for i in test_idx if infos[i]["spacing_fs"] == spacing_fs]
    else:
        shipped = list(test_idx)
    shipped = shipped[:max_frames]
    assert not set(shipped) & (set(train_idx) | set(valid_idx))

    validation = DATA / "ala3_xtb_validation.xyz"
    write_extxyz(data.subset(shipped), validation)
    test_path = run / "test.extxyz"
    write_extxyz(data.subset(test_idx), test_path)
    shipped_errors = test_model(model_path, str(validation), "eV")
    test_errors = test_model(model_path, str(test_path), "eV")
    temperatures = sorted({float(infos[i].get("temperature_K", np.nan)) for i in shipped})
    metadata.update(
        name="SO3krates Ac-Ala3-NHMe GFN2-xTB (CPU-trained)",
        level_of_theory="GFN2-xTB (tblite), gas phase",
        training_data=(f"{len(data)} frames of Langevin MD at 300/600/900/1200 K (so3k label, "
                       "bench/make_ala3_xtb_data.py): "
                       f"{len(train_idx)} train / {len(valid_idx)} early-stopping validation / {len(test_idx)} test "
                       f"(split_seed {hyper['split_seed']})"),
        validation_file="ala3_xtb_validation.xyz",
        validation_errors={k: v for k, v in shipped_errors.items() if k not in ("model", "data", "units")},
        validation_note=(f"{len(shipped)} test-split frames (never used for training or early stopping)"
                         + (f", from the trajectories sampled {spacing_fs:g} fs apart" if spacing_fs else "")
                         + f", temperatures {temperatures} K"),
        early_stopping_validation_errors=metadata["validation_errors"],
        test_errors={k: v for k, v in test_errors.items() if k not in ("model", "data", "units")},
    )
    if MD22.exists():
        md22 = test_model(model_path, str(MD22), "kcal/mol")
        metadata["md22_5frames_forces_mae_eV_per_A"] = md22["forces_mae_eV_per_A"]
        metadata["md22_5frames_forces_rmse_eV_per_A"] = md22["forces_rmse_eV_per_A"]
        metadata["md22_note"] = "MD22 reference is PBE+MBD, the model is trained on GFN2-xTB"
    save_model(DATA / "ala3_xtb.so3k", config, params, dtype=header.get("dtype", "float32"), metadata=metadata)
    print(f"wrote {DATA / 'ala3_xtb.so3k'} ({(DATA / 'ala3_xtb.so3k').stat().st_size / 1e3:.0f} kB) and "
          f"{validation} ({len(shipped)} frames, {validation.stat().st_size / 1e3:.0f} kB)")
    for label, m in (("shipped", shipped_errors), ("test", test_errors),
                     ("early-stopping valid", metadata["early_stopping_validation_errors"])):
        print(f"{label}: {m['num_structures']} frames, E MAE {m['energy_mae_eV'] * 1e3:.2f} meV "
              f"({m['energy_per_atom_mae_eV'] * 1e3:.3f} meV/atom), F MAE {m['forces_mae_eV_per_A'] * 1e3:.2f} "
              f"RMSE {m['forces_rmse_eV_per_A'] * 1e3:.2f} meV/Å")
    if MD22.exists():
        print(f"MD22 5 frames: F MAE {md22['forces_mae_eV_per_A'] * 1e3:.1f} RMSE {md22['forces_rmse_eV_per_A'] * 1e3:.1f} meV/Å")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--spacing-fs", type=float, default=30.0)
    parser.add_argument("--max-frames", type=int, default=80)
    args = parser.parse_args()
    main(args.run_dir, args.spacing_fs, args.max_frames)
