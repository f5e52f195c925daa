"""Shared fixtures. Reference data lives in ../shared (read-only, beside the repository)."""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
SO3KRATES_RANDOM = f"mlff:{REFERENCE / 'so3krates_random'}"
SO3LR = f"so3lr:{REFERENCE / 'so3lr'}"


def pytest_configure(config):
    # One XLA compilation cache for the session, inherited by the so3k and i-PI processes the tests
    # start: they compile the same models for the same shapes again and again (seconds each on 2
    # cores). Tracing still happens, so compile-count assertions see every trace.
    from so3k_driver.evaluation.compilation_cache import ENVIRONMENT, JAX_ENVIRONMENT, use_persistent_cache

    if JAX_ENVIRONMENT not in os.environ:
        config._so3k_xla_cache = tempfile.mkdtemp(prefix="so3k-tests-xla-cache-")
        os.environ[ENVIRONMENT] = config._so3k_xla_cache
        use_persistent_cache()  # as every so3k command does, with this folder


def pytest_unconfigure(config):
    folder = getattr(config, "_so3k_xla_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        for name in ("SO3K_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR", "JAX_COMPILATION_CACHE_MAX_SIZE"):
            os.environ.pop(name, None)


def pytest_collection_modifyitems(config, items):
    if not SHARED.is_dir():
        skip = pytest.mark.skip(reason=f"reference material {SHARED} not present")
        for item in items:
            if "shared" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def ala3_reference():
    return np.load(REFERENCE / "so3krates_random" / "ala3_float32.npz")


@pytest.fixture(scope="session")
def so3krates32():
    from so3k_driver.evaluation.potential import Potential

    return Potential.load(SO3KRATES_RANDOM, dtype="float32")


@pytest.fixture(scope="session")
def so3krates64():
    from so3k_driver.evaluation.potential import Potential

    return Potential.load(SO3KRATES_RANDOM, dtype="float64")


@pytest.fixture(scope="session")
def so3lr64():
    from so3k_driver.evaluation.potential import Potential

    return Potential.load(SO3LR, dtype="float64")


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def periodic_test_system(seed: int = 0):
    """8 atoms (C, N, O, H) in a small triclinic cell: a 5 Å cutoff reaches several images."""
    rng = np.random.default_rng(seed)
    cell = np.array([[4.3, 0.0, 0.0], [0.9, 4.1, 0.0], [-0.6, 0.5, 4.6]])
    numbers = np.array([6, 6, 7, 8, 1, 1, 1, 1])
    while True:
        frac = rng.uniform(size=(len(numbers), 3))
        positions = frac @ cell
        from ase import Atoms

        atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True)
        distances = atoms.get_all_distances(mic=True)[np.triu_indices(len(numbers), 1)]
        if distances.min() > 1.0:
            return numbers, positions, cell


def tiny_model_config():
    """A one-layer H/C/N/O model small enough to build committees of in a test (random weights)."""
    from so3k_driver.model.config import ModelConfig

    return ModelConfig(num_layers=1, num_features=16, num_heads=2, degrees=(1, 2), energy_regression_dim=16,
                       num_radial=8, species=(1, 6, 7, 8))


@contextlib.contextmanager
def study_held_elsewhere(folder):
    """Another process holds the study folder's lock (sampling/study_lock.py) for the block; yields it."""
    code = ("import sys, time\nfrom so3k_driver.sampling.study_lock import exclusive_study\n"
            "with exclusive_study(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(300)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
