"""The CPU compile options (evaluation/xla_options.py): passed to the model's jit, same numbers, and
left out whenever they are switched off, set by the user, or unknown to the installed XLA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_model_config

from so3k_driver.evaluation import xla_options
from so3k_driver.evaluation.potential import Potential
from so3k_driver.model.forces import initial_parameters


@pytest.fixture
def fresh_options(monkeypatch):
    """cpu_compiler_options() recomputed under the test's environment (and again afterwards)."""
    monkeypatch.delenv(xla_options.ENVIRONMENT, raising=False)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    xla_options.cpu_compiler_options.cache_clear()
    yield monkeypatch
    xla_options.cpu_compiler_options.cache_clear()


def test_this_xla_accepts_the_options(fresh_options):
    assert xla_options.cpu_compiler_options() == xla_options.CPU_OPTIONS


def test_an_option_unknown_to_xla_is_left_out(fresh_options):
    real = dict(xla_options.CPU_OPTIONS)
    fresh_options.setattr(xla_options, "CPU_OPTIONS", {"xla_cpu_no_such_option_in_any_xla": "1", **real})
    assert xla_options.cpu_compiler_options() == real


@pytest.mark.parametrize("switch", ["0", "off", "False"])
def test_the_switch_turns_them_off(fresh_options, switch):
    fresh_options.setenv(xla_options.ENVIRONMENT, switch)
    assert xla_options.cpu_compiler_options() == {}


def test_an_option_the_user_set_in_xla_flags_is_theirs(fresh_options):
    fresh_options.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT")
    assert "xla_cpu_experimental_ynn_fusion_type" not in xla_options.cpu_compiler_options()


def test_a_gpu_function_gets_no_cpu_options(fresh_options):
    xla_options.cpu_compiler_options()  # probed before jax.jit is replaced below
    calls = []
    fresh_options.setattr(xla_options.jax, "jit", lambda f, **options: calls.append(options) or f)
    xla_options.jit(jnp.sin, "gpu", static_argnames=("n",))
    xla_options.jit(jnp.sin, "cpu")
    assert calls == [{"static_argnames": ("n",)}, {"compiler_options": xla_options.CPU_OPTIONS}]


def _compiled_text(potential, numbers, positions) -> str:
    """The optimised HLO of the potential's call on this structure."""
    dispatched = {}
    original = potential._dispatch

    def spy(index, batch, with_stress, dense_long_range):
        dispatched["batch"], dispatched["dense"] = batch, dense_long_range
        return original(index, batch, with_stress, dense_long_range)

    potential._dispatch = spy
    potential.evaluate(numbers, positions)
    return potential.lower(dispatched["batch"], False, dispatched["dense"]).compile().as_text()


@pytest.mark.shared  # ala3_reference
def test_the_model_is_compiled_with_them_and_keeps_its_numbers(fresh_options, ala3_reference):
    config = tiny_model_config()
    params = initial_parameters(config, seed=3)
    numbers, positions = ala3_reference["numbers"], ala3_reference["positions"].astype(np.float64)
    with_options = Potential(config, params)
    fresh_options.setenv(xla_options.ENVIRONMENT, "0")
    xla_options.cpu_compiler_options.cache_clear()
    without = Potential(config, params)

    assert "__ynn_fusion" not in _compiled_text(with_options, numbers, positions)
    if jax.__version_info__ >= (0, 10):  # the release whose YNNPACK fusions the options switch off
        assert "__ynn_fusion" in _compiled_text(without, numbers, positions)
    a, b = with_options.evaluate(numbers, positions), without.evaluate(numbers, positions)
    np.testing.assert_allclose(a.energy, b.energy, rtol=1e-6)
    np.testing.assert_allclose(a.forces, b.forces, atol=1e-5)
