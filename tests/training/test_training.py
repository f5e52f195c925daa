"""Training pipeline: loss goes down, exact resume, unit handling, data loading (tiny, CPU, < 1 min)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from so3k_driver.errors import UserError
from so3k_driver.io.model_files import flatten, load_model
from so3k_driver.training.data import fit_energy_shifts, load_dataset
from so3k_driver.training.settings import TrainSettings
from so3k_driver.training.trainer import train
from so3k_driver.units import KCAL_PER_MOL_IN_EV

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
ETHANOL = SHARED / "md17_ethanol.npz"
pytestmark = pytest.mark.skipif(not ETHANOL.exists(), reason="needs ../shared/data")

TINY_MODEL = {"num_layers": 1, "num_features": 12, "num_heads": 2, "degrees": [1, 2],
              "energy_regression_dim": 12, "num_radial": 8}


@pytest.fixture(scope="module")
def ethanol_files(tmp_path_factory):
    """24 ethanol frames as kcal/mol npz and as eV npz (same structures)."""
    folder = tmp_path_factory.mktemp("ethanol")
    with np.load(ETHANOL) as archive:
        R, E, F, z = archive["R"][:24], archive["E"][:24], archive["F"][:24], archive["z"]
    kcal = folder / "ethanol_kcal.npz"
    ev = folder / "ethanol_ev.npz"
    np.savez(kcal, R=R, E=E, F=F, z=z)
    np.savez(ev, R=R, E=E * KCAL_PER_MOL_IN_EV, F=F * KCAL_PER_MOL_IN_EV, z=z)
    return kcal, ev


def settings(data, unit, out, epochs=2, **extra):
    return TrainSettings(data=str(data), energy_unit=unit, num_train=12, num_valid=4, batch_size=4,
                         epochs=epochs, learning_rate=3e-3, model=TINY_MODEL, output_dir=str(out),
                         progress=False, plot=False, **extra)


def params_of(path):
    return flatten(load_model(str(path))[1])


@pytest.fixture(scope="module")
def reference_run(ethanol_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_kcal")
    result = train(settings(ethanol_files[0], "kcal/mol", out), log=lambda *_: None)
    return out, result


def test_training_lowers_the_loss(reference_run):
    out, result = reference_run
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    header = load_model(str(out / "model.so3k"))[2]
    assert header["metadata"]["num_train"] == 12
    assert header["metadata"]["validation_errors"]["forces_mae_eV_per_A"] > 0
    assert (out / "validation.extxyz").exists()


def test_resume_reproduces_uninterrupted_run(ethanol_files, reference_run, tmp_path):
    out, _ = reference_run
    quiet = lambda *_: None  # noqa: E731
    train(settings(ethanol_files[0], "kcal/mol", tmp_path, epochs=1), log=quiet)  # "interrupted" after epoch 1
    messages = []
    train(settings(ethanol_files[0], "kcal/mol", tmp_path, epochs=2), log=messages.append)
    assert any("resuming" in m for m in messages)
    assert messages[0].startswith("data: 12 training and 4 validation structures from "), messages[0]
    reference, resumed = params_of(out / "model.so3k"), params_of(tmp_path / "model.so3k")
    for key in reference:
        np.testing.assert_array_equal(reference[key], resumed[key], err_msg=key)
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_a_resumed_run_scores_its_best_weights_with_its_own_loss(ethanol_files, tmp_path):
    """Resumed with a 100x energy weight, the best weights are scored under the new weight: later epochs then
    compete with that loss, not with the smaller one stored under the old weight (which would keep the
    old best weights for ever)."""
    from so3k_driver.training.checkpoints import Checkpoints
    from so3k_driver.training.trainer import Trainer

    quiet = lambda *_: None  # noqa: E731
    train(settings(ethanol_files[1], "eV", tmp_path, epochs=1, energy_weight=0.01), log=quiet)
    trainer = Trainer(settings(ethanol_files[1], "eV", tmp_path, epochs=1, energy_weight=1.0), log=quiet)
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    stored = checkpoints.restore(1, trainer.initial_state())
    state = trainer._resume(checkpoints, trainer.initial_state())
    checkpoints.close()
    valid = trainer.validate(state["best"])
    assert float(state["best_loss"]) == pytest.approx(valid["loss"], rel=1e-6)
    # the stored loss had 0.01 * energy MSE, the re-scored one 1.0 * energy MSE
    assert float(state["best_loss"]) == pytest.approx(float(stored["best_loss"]) + 0.99 * valid["energy_rmse_eV"] ** 2,
                                                      rel=1e-5)
    assert float(state["best_loss"]) > 2 * float(stored["best_loss"])


# SIGTERM goes through the same KeyboardInterrupt path as Ctrl-C, so only it runs by default
@pytest.mark.parametrize("stop", [pytest.param("ctrl-c", marks=pytest.mark.slow), "sigterm"])
def test_a_stop_exports_the_finished_epochs(ethanol_files, tmp_path, monkeypatch, stop):
    """Ctrl-C or SIGTERM (a batch system's stop) during epoch 2 writes the model of epoch 1 (its EMA
    weights) instead of losing the run; the SIGTERM handler is put back afterwards."""
    import os
    import signal
    import time

    from so3k_driver.training.trainer import Trainer

    original = Trainer._epoch

    def interrupted(self, state, epoch):
        if epoch == 2:
            if stop == "ctrl-c":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises within the sleep
            time.sleep(5)
            raise AssertionError("SIGTERM did not stop the epoch")
        return original(self, state, epoch)

    handler_before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(Trainer, "_epoch", interrupted)
    train(settings(ethanol_files[0], "kcal/mol", tmp_path, epochs=3), log=lambda *_: None)
    metadata = load_model(str(tmp_path / "model.so3k"))[2]["metadata"]
    assert metadata["epochs_trained"] == 1
    assert metadata["stop_reason"] == "interrupted during epoch 2"
    assert signal.getsignal(signal.SIGTERM) is handler_before


def test_kcal_and_ev_inputs_give_the_same_model(ethanol_files, reference_run, tmp_path):
    out, _ = reference_run
    train(settings(ethanol_files[1], "eV", tmp_path), log=lambda *_: None)
    reference, other = params_of(out / "model.so3k"), params_of(tmp_path / "model.so3k")
    for key in reference:
        np.testing.assert_allclose(reference[key], other[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_loaders_convert_units_and_reject_inconsistent_files(tmp_path):
    md22 = load_dataset(SHARED / "md22_Ac-Ala3-NHMe_5frames.xyz", "kcal/mol")
    assert len(md22) == 5 and md22.max_atoms == 42
    assert md22.energies[0] == pytest.approx(-620726.002662 * KCAL_PER_MOL_IN_EV)
    benzene = SHARED / "rmd17_benzene_10frames.npz"
    if benzene.exists():  # 10 nuclear charges for 12-atom structures: must be refused
        with pytest.raises(UserError, match="atomic numbers"):  # one line, like every malformed data file
            load_dataset(benzene, "kcal/mol")
    shifts = fit_energy_shifts(md22)
    residual = md22.energies - np.array([shifts[n].sum() for n in md22.numbers])
    assert abs(residual.mean()) < 1e-6 * abs(md22.energies.mean())
