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


# ----- broken model files: every failure is one ModelFileError, nothing runs ----------------------

@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    from so3k_driver.io.model_files import load_model, save_model

    config, params, _ = load_model(SO3KRATES_RANDOM)
    path = save_model(tmp_path_factory.mktemp("model") / "model.so3k", config, params)
    return path.read_bytes()


def damaged_versions(data: bytes, seed: int, count: int):
    """Truncations at spread-out lengths and single-byte flips at random places (seeded)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for length in np.linspace(0, len(data) - 1, count).astype(int):
        yield f"cut at {length}", data[:length]
    for position in rng.integers(0, len(data), count):
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        yield f"byte {position} flipped", bytes(flipped)


def test_truncated_or_corrupted_so3k_files_raise_model_file_errors(tmp_path, model_bytes):
    from so3k_driver.io.model_files import ModelFileError, load_model

    refused = 0
    for label, data in damaged_versions(model_bytes, seed=1, count=12):
        path = tmp_path / "damaged.so3k"
        path.write_bytes(data)
        try:
            load_model(str(path))
        except ModelFileError:
            refused += 1
        except Exception as error:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{label}: {type(error).__name__}: {error}")
    assert refused >= 20  # a flip inside zip padding may be harmless; every truncation is refused


def test_truncated_or_corrupted_parameter_pickles_raise_model_file_errors(tmp_path):
    from so3k_driver.io.model_files import ModelFileError, load_model

    source = REFERENCE / "so3krates_random"
    data = (source / "params.pkl").read_bytes()
    (tmp_path / "hparams.json").write_text((source / "hparams.json").read_text())
    marker = tmp_path / "pwned"
    for label, damaged in damaged_versions(data, seed=2, count=8):
        (tmp_path / "params.pkl").write_bytes(damaged)
        try:
            load_model(f"mlff:{tmp_path}")
        except ModelFileError:
            pass
        except Exception as error:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{label}: {type(error).__name__}: {error}")
    assert not marker.exists()


def edited_model(tmp_path, edit_header=None, edit_arrays=None):
    """The random-weights model as a .so3k whose config.json / params.npz were edited."""
    import io
    import zipfile

    import numpy as np

    from so3k_driver.io.model_files import load_model, save_model

    config, params, _ = load_model(SO3KRATES_RANDOM)
    path = save_model(tmp_path / "model.so3k", config, params)
    with zipfile.ZipFile(path) as archive:
        header = json.loads(archive.read("config.json"))
        arrays = dict(np.load(io.BytesIO(archive.read("params.npz"))))
    if edit_header:
        edit_header(header)
    if edit_arrays:
        edit_arrays(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(header))
        archive.writestr("params.npz", buffer.getvalue())
    return str(path)


@pytest.mark.parametrize("case, message", [
    ("config_lacks_key", "lacks 'num_features'"),
    ("species_field_differs", "'species' field"),
    ("cutoff_field_differs", "'cutoff_angstrom' field"),
    ("missing_array", "missing for this configuration"),
    ("wrong_shape", "has shape"),
])
def test_inconsistent_model_files_are_refused_in_one_line(tmp_path, case, message):
    from so3k_driver.io.model_files import ModelFileError, load_model

    def header(h):
        if case == "config_lacks_key":
            del h["model"]["num_features"]
        elif case == "species_field_differs":
            h["species"] = [1, 6]
        elif case == "cutoff_field_differs":
            h["cutoff_angstrom"] = 7.5

    def arrays(a):
        name = sorted(a)[0]
        if case == "missing_array":
            del a[name]
        elif case == "wrong_shape":
            a[name] = a[name][..., :-1]

    path = edited_model(tmp_path, header, arrays)
    with pytest.raises(ModelFileError, match=message) as caught:
        load_model(path)
    assert "\n" not in str(caught.value)


def test_authors_layout_lacking_a_configuration_key_is_a_model_file_error(tmp_path):
    from so3k_driver.io.model_files import ModelFileError, load_model

    source = REFERENCE / "so3krates_random"
    hparams = json.loads((source / "hparams.json").read_text())
    del hparams["num_heads"]
    (tmp_path / "hparams.json").write_text(json.dumps(hparams))
    (tmp_path / "params.pkl").write_bytes((source / "params.pkl").read_bytes())
    with pytest.raises(ModelFileError, match="lacks 'num_heads'"):
        load_model(f"mlff:{tmp_path}")
