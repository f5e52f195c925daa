"""Each bundled model loads and reproduces its recorded validation error on its recorded validation
frames (so3k_driver/data/*_validation.xyz, eV and eV/Å): the SO3LR student (``default``) against SO3LR
(float64 labels, gas phase, all pairs; the student's long-range terms over all pairs too), ``ala3-xtb``
against GFN2-xTB."""

from __future__ import annotations

from importlib import resources

import pytest

from so3k_driver.io.model_files import BUNDLED_MODELS, MODEL_ALIASES, MODEL_SPECS, absolute_model_spec, load_model

DATA = resources.files("so3k_driver.data")
# model name: the long-range cutoff its recorded errors were measured with (Å; None = all pairs)
LR_CUTOFF = {"ala3-xtb": 12.0, "so3lr-student": None, "so3lr-student-v6": None, "so3lr-student-v10": None}


# The earlier defaults (v6, v10) are kept unchanged for studies begun with them and run the code the default
# runs: their ~20 s each are behind the slow marker (a study records its model's fingerprint besides).
EARLIER_DEFAULTS = ("so3lr-student-v6", "so3lr-student-v10")


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in EARLIER_DEFAULTS else name
                                  for name in sorted(BUNDLED_MODELS)])
def test_bundled_model_reproduces_recorded_validation_error(name):
    from so3k_driver.training.testing import test_model

    assert DATA.joinpath(BUNDLED_MODELS[name]).is_file(), f"bundled model {name} is missing from the package"
    _, _, header = load_model(name)
    metadata = header["metadata"]
    recorded = metadata["validation_errors"]
    validation = DATA.joinpath(metadata["validation_file"])
    measured = test_model(name, str(validation), "eV", lr_cutoff=LR_CUTOFF[name])
    assert measured["num_structures"] == recorded["num_structures"]
    assert measured["forces_mae_eV_per_A"] == pytest.approx(recorded["forces_mae_eV_per_A"], rel=2e-3)
    assert measured["forces_rmse_eV_per_A"] == pytest.approx(recorded["forces_rmse_eV_per_A"], rel=2e-3)
    # energies: float32 evaluation of ~1.8 keV totals, so allow 1 meV on the MAE
    assert measured["energy_mae_eV"] == pytest.approx(recorded["energy_mae_eV"], abs=1e-3)


def test_default_names_the_so3lr_student():
    """'default' is what a user reaches for first: the model made for the Ac-Ala15-NHMe study, not ala3-xtb."""
    assert MODEL_ALIASES["default"] == "so3lr-student"
    default, student = load_model("default"), load_model("so3lr-student")
    assert default[0] == student[0] and default[2] == student[2]
    assert absolute_model_spec("default") == "default" and "default = so3lr-student" in MODEL_SPECS


@pytest.mark.slow  # two models on 12 frames of 162 atoms
def test_the_student_is_closer_to_its_teacher_than_the_ala3_xtb_model():
    """On the student's SO3LR-labelled validation frames (Ac-Ala15-NHMe), ala3-xtb, made for Ac-Ala3-NHMe at
    the GFN2-xTB level, is further from SO3LR: why the folding study uses the student."""
    from so3k_driver.training.testing import test_model

    validation = str(DATA.joinpath("so3lr_student_validation.xyz"))
    student = test_model("so3lr-student", validation, "eV", lr_cutoff=None)
    ala3_xtb = test_model("ala3-xtb", validation, "eV")
    # measured: 91.7 (v13; v10 120.6, v6 121.2, v4 e7 124.8) against 150.5 meV/Å
    # (ala3-xtb's energies are on the GFN2-xTB scale: not compared)
    assert student["forces_mae_eV_per_A"] < 0.9 * ala3_xtb["forces_mae_eV_per_A"]
