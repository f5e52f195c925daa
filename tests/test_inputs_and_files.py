"""Bad input gets a one-line error naming the problem; model files load safely."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import REFERENCE, SO3KRATES_RANDOM, periodic_test_system
from so3k_driver.evaluation.validation import InputError

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def small_species_potential(so3krates32):
    """The random reference weights restricted to H, C, N, O, as a trained model would be."""
    import dataclasses

    from so3k_driver.io.model_files import load_model
    from so3k_driver.evaluation.potential import Potential

    config, params, _ = load_model(SO3KRATES_RANDOM)
    return Potential(dataclasses.replace(config, species=(1, 6, 7, 8)), params)


def ethanol():
    numbers = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    positions = np.array([
        [1.222, -0.382, 0.0], [0.054, 0.578, 0.0], [-1.136, -0.209, 0.0], [-1.893, 0.400, 0.0],
        [0.096, 1.226, 0.887], [0.096, 1.226, -0.887], [2.170, 0.163, 0.0], [1.182, -1.019, 0.886],
        [1.182, -1.019, -0.886],
    ])
    return numbers, positions


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda z, r: (np.where(np.arange(len(z)) == 2, 14, z), r), "Si"),
        (lambda z, r: (z, np.where(np.arange(len(z))[:, None] == 4, np.nan, r)), "non-finite"),
        (lambda z, r: (z, np.vstack([r[:-1], r[:1] + 0.05])), "apart"),
        (lambda z, r: (z[:0], r[:0]), "empty"),
        (lambda z, r: (z, r[:-1]), "mismatched"),
    ],
    ids=["unknown-element", "nan", "close-atoms", "empty", "mismatched"],
)
def test_bad_structures_raise_one_line_errors(small_species_potential, mutate, message):
    numbers, positions = mutate(*ethanol())
    with pytest.raises(InputError) as info:
        small_species_potential.evaluate(numbers, positions)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_degenerate_periodic_cell_is_refused(small_species_potential):
    numbers, positions = ethanol()
    flat = np.array([[5.0, 0, 0], [0, 5.0, 0], [5.0, 5.0, 0]])
    with pytest.raises(InputError, match="degenerate"):
        small_species_potential.evaluate(numbers, positions, flat, True)


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


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "so3k_driver.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_eval_json_with_stress(tmp_path):
    import ase.io
    from ase import Atoms

    numbers, positions, cell = periodic_test_system()
    periodic = tmp_path / "box.extxyz"
    ase.io.write(periodic, Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True))
    molecule = REFERENCE / "ala3.xyz"
    result = run_cli("eval", SO3KRATES_RANDOM, str(molecule), str(periodic), "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2
    assert {"energy", "forces"} <= set(records[0]) and "stress" not in records[0]
    assert np.asarray(records[1]["stress"]).shape == (3, 3)
    assert np.asarray(records[0]["forces"]).shape == (42, 3)


def test_cli_reports_bad_input_in_one_line(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("2\n\nC 0 0 0\nC 0 0 0.05\n")
    result = run_cli("eval", SO3KRATES_RANDOM, str(bad))
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "apart" in result.stderr
    missing = run_cli("eval", "mlff:/nonexistent", str(bad))
    assert missing.returncode != 0 and "not a directory" in missing.stderr


def test_cli_user_errors_are_one_line_under_python_m():
    """`python -m so3k_driver.cli` runs cli.py as __main__: user errors must still be caught."""
    result = run_cli("run", "/nonexistent/input.xml", "--model", "default")
    assert result.returncode == 2
    assert result.stderr.strip() == "so3k run: error: input file /nonexistent/input.xml not found"
