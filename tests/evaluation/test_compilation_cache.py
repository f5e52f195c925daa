"""evaluation/compilation_cache.py: where the so3k commands keep compiled models."""

import os
import subprocess
import sys
from pathlib import Path

from so3k_driver.evaluation.compilation_cache import (JAX_ENVIRONMENT, MAX_SIZE_BYTES, machine_key,
                                                      use_persistent_cache)

DATA = Path(__file__).resolve().parents[2] / "so3k_driver" / "data"


def test_a_folder_the_user_gave_jax_is_kept():
    environ = {JAX_ENVIRONMENT: "/somewhere/else", "SO3K_COMPILATION_CACHE": "off"}
    assert use_persistent_cache(environ) == Path("/somewhere/else")
    assert environ == {JAX_ENVIRONMENT: "/somewhere/else", "SO3K_COMPILATION_CACHE": "off"}


def test_off_means_no_cache(tmp_path):
    for word in ("0", "off", "False", "no"):
        environ = {"SO3K_COMPILATION_CACHE": word, "XDG_CACHE_HOME": str(tmp_path)}
        assert use_persistent_cache(environ) is None and JAX_ENVIRONMENT not in environ
    assert not any(tmp_path.iterdir())


def test_the_default_folder_is_per_machine_under_the_user_cache(tmp_path):
    environ = {"XDG_CACHE_HOME": str(tmp_path)}
    folder = use_persistent_cache(environ)
    assert folder == tmp_path / "so3k_driver" / "xla" / machine_key() and folder.is_dir()
    assert environ[JAX_ENVIRONMENT] == str(folder)
    assert environ["JAX_COMPILATION_CACHE_MAX_SIZE"] == str(MAX_SIZE_BYTES)


def test_a_named_folder_is_created(tmp_path):
    environ = {"SO3K_COMPILATION_CACHE": str(tmp_path / "mine" / "xla")}
    assert use_persistent_cache(environ) == tmp_path / "mine" / "xla" and (tmp_path / "mine" / "xla").is_dir()


def test_a_folder_that_cannot_be_made_means_no_cache_and_no_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    environ = {"XDG_CACHE_HOME": str(blocker)}
    assert use_persistent_cache(environ) is None and JAX_ENVIRONMENT not in environ


def test_the_machine_key_follows_the_instruction_set():
    avx512 = "processor : 0\nflags : fpu sse2 avx avx2 avx512f\n"
    assert machine_key(avx512) == machine_key("flags\t: avx512f avx2 avx sse2 fpu\nflags : fpu\n")
    assert machine_key(avx512) != machine_key("flags : fpu sse2 avx avx2\n")
    assert machine_key("Features : fp asimd sve\n") != machine_key("Features : fp asimd\n")  # aarch64 spelling


def test_a_command_fills_the_cache(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k not in (JAX_ENVIRONMENT, "SO3K_COMPILATION_CACHE")}
    # every compilation stored, however fast this machine compiles
    environ.update(XDG_CACHE_HOME=str(tmp_path), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    command = [sys.executable, "-m", "so3k_driver.cli", "eval", "ala3-xtb", str(DATA / "Ac-Ala3-NHMe_ext.xyz")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environ)
    assert result.returncode == 0, result.stderr
    entries = list((tmp_path / "so3k_driver" / "xla" / machine_key()).iterdir())
    assert entries, "no compiled model was stored"
