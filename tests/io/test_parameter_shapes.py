"""Parameter shapes are traced once per configuration and code, then read back (io/parameter_shapes.py)."""

import dataclasses
import json

import jax
import pytest

from so3k_driver.io import parameter_shapes
from so3k_driver.io.model_files import leaves
from so3k_driver.model.forces import initial_parameters
from conftest import tiny_model_config


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    """A fresh compilation-cache folder and an empty per-process memory."""
    monkeypatch.setattr(parameter_shapes, "_remembered", {})
    monkeypatch.setattr(parameter_shapes, "_disk_folder", lambda: tmp_path / parameter_shapes.FOLDER_NAME)
    return tmp_path / parameter_shapes.FOLDER_NAME


def no_tracing(config):
    raise AssertionError("traced although the shapes were remembered")


def test_the_shapes_are_the_initialisations_and_are_read_back_without_tracing(cache_folder, monkeypatch):
    config = tiny_model_config()
    initialised = {name: value.shape for name, value in leaves(jax.eval_shape(lambda: initial_parameters(config)))}
    assert parameter_shapes.expected_shapes(config) == initialised
    assert len(list(cache_folder.glob("*.json"))) == 1 and not list(cache_folder.glob("*.part"))

    monkeypatch.setattr(parameter_shapes, "_traced", no_tracing)
    assert parameter_shapes.expected_shapes(config) == initialised  # this process remembers
    monkeypatch.setattr(parameter_shapes, "_remembered", {})
    assert parameter_shapes.expected_shapes(config) == initialised  # another process reads the file


def test_another_configuration_has_its_own_entry(cache_folder):
    config = tiny_model_config()
    wider = dataclasses.replace(config, num_features=24)
    assert parameter_shapes.expected_shapes(wider) != parameter_shapes.expected_shapes(config)
    assert len(list(cache_folder.glob("*.json"))) == 2


def test_a_damaged_file_is_traced_again_and_rewritten(cache_folder, monkeypatch):
    config = tiny_model_config()
    shapes = parameter_shapes.expected_shapes(config)
    (entry,) = cache_folder.glob("*.json")
    entry.write_text('{"params/x": [1, ')
    monkeypatch.setattr(parameter_shapes, "_remembered", {})
    assert parameter_shapes.expected_shapes(config) == shapes
    assert {name: tuple(shape) for name, shape in json.loads(entry.read_text()).items()} == shapes


def test_an_unwritable_folder_only_means_tracing(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setattr(parameter_shapes, "_remembered", {})
    monkeypatch.setattr(parameter_shapes, "_disk_folder", lambda: blocker / parameter_shapes.FOLDER_NAME)
    assert parameter_shapes.expected_shapes(tiny_model_config())


def test_the_key_follows_the_configuration_and_the_library_versions(monkeypatch):
    text = json.dumps(tiny_model_config().to_dict(), sort_keys=True)
    before = parameter_shapes.cache_key(text)
    assert parameter_shapes.cache_key(text) == before
    assert parameter_shapes.cache_key(text.replace('"num_features": 16', '"num_features": 17')) != before
    monkeypatch.setattr(parameter_shapes.metadata, "version", lambda library: "0.0-other")
    assert parameter_shapes.cache_key(text) != before
