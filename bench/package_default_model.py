"""Copy a finished training run into the package as the bundled default model.

  .venv/bin/python bench/package_default_model.py RUN_DIR

Writes so3k_driver/data/default.so3k (metadata: data provenance, level of theory, validation file,
force error on the 5 MD22 frames) and so3k_driver/data/default_validation.xyz (eV, eV/Å).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from so3k_driver.model_io import load_model, save_model
from so3k_driver.training.testing import test_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "so3k_driver" / "data"
MD22 = ROOT / ".." / "shared" / "data" / "md22_Ac-Ala3-NHMe_5frames.xyz"


def main(run_dir: str) -> None:
    run = Path(run_dir)
    config, params, header = load_model(str(run / "model.so3k"))
    metadata = dict(header["metadata"])
    shutil.copy(run / "validation.extxyz", DATA / "default_validation.xyz")
    metadata.update(
        name="SO3krates Ac-Ala3-NHMe GFN2-xTB (small, CPU-trained)",
        level_of_theory="GFN2-xTB (tblite), gas phase",
        training_data="240 frames of Langevin MD at 300/600/900/1200 K (so3k label), 200 train / 40 validation",
        validation_file="default_validation.xyz",
    )
    if MD22.exists():
        md22 = test_model(str(run / "model.so3k"), str(MD22), "kcal/mol")
        metadata["md22_5frames_forces_mae_eV_per_A"] = md22["forces_mae_eV_per_A"]
        metadata["md22_5frames_forces_rmse_eV_per_A"] = md22["forces_rmse_eV_per_A"]
        metadata["md22_note"] = "MD22 reference is PBE+MBD, the model is trained on GFN2-xTB"
    save_model(DATA / "default.so3k", config, params, dtype=header.get("dtype", "float32"), metadata=metadata)
    print(f"wrote {DATA / 'default.so3k'} ({(DATA / 'default.so3k').stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main(sys.argv[1])
