"""Model files load safely (a pickle never runs code) and the project's format round-trips."""

import json
import pickle

import pytest

from conftest import REFERENCE, SO3KRATES_RANDOM

pytestmark = pytest.mark.shared


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    from so3k_driver.io.model_files import ModelFileError, load_model

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    model_dir = tmp_path / "evil"
    model_dir.mkdir()
    (model_dir / "params.pkl").write_bytes(pickle.dumps({"params": Exploit()}))
    (model_dir / "hparams.json").write_text((REFERENCE / "so3krates_random" / "hparams.json").read_text())
    with pytest.raises(ModelFileError, match="refusing"):
        load_model(f"mlff:{model_dir}")
    assert not marker.exists()


def test_own_format_roundtrip(tmp_path, so3krates32, ala3_reference):
    from so3k_driver.io.model_files import load_model, save_model
    from so3k_driver.evaluation.potential import Potential

    config, params, _ = load_model(SO3KRATES_RANDOM)
    path = save_model(tmp_path / "model.so3k", config, params, metadata={"note": "test"})
    header = json.loads(__import__("zipfile").ZipFile(path).read("config.json"))
    assert header["schema_version"] == 1 and header["units"]["energy"] == "eV"
    assert header["cutoff_angstrom"] == 5.0 and header["code_version"]
    reloaded = Potential.load(str(path))
    ref = ala3_reference
    a = reloaded.evaluate(ref["numbers"], ref["positions"])
    b = so3krates32.evaluate(ref["numbers"], ref["positions"])
    assert a.energy[0] == b.energy[0]
