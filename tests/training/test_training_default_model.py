"""The bundled default model loads and reproduces its recorded validation error on its recorded
validation frames (so3k_driver/data/default_validation.xyz, GFN2-xTB, eV and eV/Å)."""

from __future__ import annotations

from importlib import resources

import pytest

from so3k_driver.io.model_files import load_model

DATA = resources.files("so3k_driver.data")
pytestmark = pytest.mark.skipif(not DATA.joinpath("default.so3k").is_file(), reason="no bundled default model")


def test_default_model_reproduces_recorded_validation_error():
    from so3k_driver.training.testing import test_model

    _, _, header = load_model("default")
    metadata = header["metadata"]
    recorded = metadata["validation_errors"]
    validation = DATA.joinpath(metadata["validation_file"])
    measured = test_model("default", str(validation), "eV")
    assert measured["num_structures"] == recorded["num_structures"]
    assert measured["forces_mae_eV_per_A"] == pytest.approx(recorded["forces_mae_eV_per_A"], rel=2e-3)
    assert measured["forces_rmse_eV_per_A"] == pytest.approx(recorded["forces_rmse_eV_per_A"], rel=2e-3)
    # energies: float32 evaluation of ~1.8 keV totals, so allow 1 meV on the MAE
    assert measured["energy_mae_eV"] == pytest.approx(recorded["energy_mae_eV"], abs=1e-3)
