"""Copy a distilled SO3LR student into the package as the bundled model ``so3lr-student``.

  .venv/bin/python bench/package_student_model.py MODEL.so3k TEST.extxyz [--every 10]

TEST holds held-out frames labelled by the teacher (SO3LR, gas phase, all pairs, float64; eV, eV/Å), frames
the student never trained on. Every ``--every``-th of them is written to
so3k_driver/data/so3lr_student_validation.xyz, and the errors recorded in the model's metadata
(``validation_errors``) are measured on exactly those shipped frames, with the student in float32 and its
long-range terms over all pairs; the errors on the whole TEST file are recorded alongside
(``test_errors``). The model card is docs/model_card.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ase.io

from so3k_driver.evaluation.frames import ase_read
from so3k_driver.io.model_files import BUNDLED_MODELS, load_model, save_model
from so3k_driver.training.testing import test_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "so3k_driver" / "data"
NAME = "so3lr-student"
VALIDATION = "so3lr_student_validation.xyz"


def errors_of(model: str, data: str) -> dict:
    measured = test_model(model, data, "eV", lr_cutoff=None)
    return {k: v for k, v in measured.items() if k not in ("model", "data", "units")}


def main(model_path: str, test_path: str, every: int) -> None:
    config, params, header = load_model(model_path)
    frames = ase_read(test_path, index=":")
    shipped = frames[::every]
    validation = DATA / VALIDATION
    ase.io.write(validation, shipped, format="extxyz")
    metadata = dict(header["metadata"])
    temperatures = sorted({float(a.info.get("temperature_K", float("nan"))) for a in shipped})
    sources = sorted({str(a.info.get("source", "?")) for a in shipped})
    metadata.update(
        name=f"SO3LR student for Ac-Ala peptides ({config.num_layers} layers, {config.num_features} features, "
             "SO3LR long-range terms)",
        level_of_theory="SO3LR (the authors' published parameters) as teacher: gas phase, long-range terms over "
                        "all pairs; held-out labels in float64",
        evaluation="float32, long-range terms over all pairs (lr_cutoff None), gas phase",
        source_file=str(Path(model_path).name),
        validation_file=VALIDATION,
        validation_errors=errors_of(model_path, str(validation)),
        validation_note=(f"every {every}th of {len(frames)} held-out frames ({len(shipped)} frames, never trained on): "
                         f"SO3LR replica exchange + end-to-end metadynamics from {', '.join(sources)}, "
                         f"temperatures {temperatures} K"),
        test_errors=errors_of(model_path, test_path),
        test_note=f"all {len(frames)} held-out frames of {Path(test_path).name}",
        card="docs/model_card.md",
    )
    out = DATA / BUNDLED_MODELS[NAME]
    save_model(out, config, params, dtype=header.get("dtype", "float32"), metadata=metadata)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB) and {validation} ({len(shipped)} frames, "
          f"{validation.stat().st_size / 1e3:.0f} kB)")
    for key in ("validation_errors", "test_errors"):
        e = metadata[key]
        print(f"{key}: forces MAE {1e3 * e['forces_mae_eV_per_A']:.1f} meV/Å, RMSE {1e3 * e['forces_rmse_eV_per_A']:.1f}; "
              f"energy MAE {1e3 * e['energy_per_atom_mae_eV']:.2f} meV/atom ({e['num_structures']} frames)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("test")
    parser.add_argument("--every", type=int, default=10, help="ship every k-th held-out frame (default 10)")
    args = parser.parse_args()
    main(args.model, args.test, args.every)
