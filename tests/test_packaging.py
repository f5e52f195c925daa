"""The real install, not the editable one: build the wheel, install it outside the source tree and
check that every module imports, the package data is there and every ``so3k`` subcommand answers
``--help``.

The wheel is built from a copy of the project files (pyproject.toml, README.md, so3k_driver/), so a
stale ``build/`` folder in the checkout cannot slip deleted modules into it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "so3k_driver"
# Modules that import i-PI internals at import time and only load inside i-PI (ffdirect's pes/).
NEEDS_IPI_CONTEXT = {"so3k_driver.ipi.direct_pes", "so3k_driver.ipi.pes"}
PACKAGE_DATA = ("*.so3k", "*.xyz", "*.json")

# Run inside the installed wheel: where the package comes from, which modules fail to import, and
# every subcommand path the parser registers (nested subparsers included).
PROBE = r"""
import argparse, importlib, json, sys, traceback
import so3k_driver
from so3k_driver.cli import build_parser

failures = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=-3)

def commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # an alias of a command already listed
                    continue
                seen.add(id(sub))
                yield [*prefix, name]
                yield from commands(sub, (*prefix, name))

print(json.dumps({"file": so3k_driver.__file__, "failures": failures,
                  "commands": list(commands(build_parser()))}))
"""


def source_modules() -> list[str]:
    """Dotted names of every package (``__init__.py``) and module (``*.py``) under so3k_driver/."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if "__pycache__" in parts or parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel path, site folder, environment whose PYTHONPATH puts the wheel's copy first)."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "src"
    source.mkdir()
    for path in REPO.iterdir():
        if path.is_file() and not path.name.startswith("."):
            shutil.copy2(path, source / path.name)
    shutil.copytree(PACKAGE, source / "so3k_driver",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(root / "dist"), "."], cwd=source, check=True,
                   capture_output=True, text=True, timeout=300)
    (wheel,) = (root / "dist").glob("so3k_driver-*.whl")
    site = root / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True, text=True, timeout=300)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1")
    outside = root / "elsewhere"
    outside.mkdir()
    return wheel, site, env, outside


def test_wheel_holds_every_module_and_the_package_data(installed):
    wheel, *_ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(path.relative_to(REPO)) for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts}
    expected |= {str(path.relative_to(REPO)) for pattern in PACKAGE_DATA for path in (PACKAGE / "data").glob(pattern)}
    assert any(name.endswith(".so3k") for name in expected), "no bundled model in so3k_driver/data"
    assert sorted(expected - names) == []
    for module in NEEDS_IPI_CONTEXT:
        assert module.replace(".", "/") + ".py" in names
    top_level = {name.split("/")[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"so3k_driver"}


@pytest.fixture(scope="module")
def probe(installed):
    """The PROBE's report, run with the wheel's copy first on the path, from outside the source tree."""
    _, site, env, outside = installed
    modules = [name for name in source_modules() if name not in NEEDS_IPI_CONTEXT]
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(modules)], cwd=outside, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).resolve().is_relative_to(site.resolve()), report["file"]
    return report


def test_wheel_imports_every_module(probe):
    assert probe["failures"] == {}, "\n".join(probe["failures"].values())


def test_every_subcommand_of_the_installed_wheel_has_help(installed, probe):
    _, _, env, outside = installed
    commands = probe["commands"]
    assert ["run"] in commands and ["analyze"] in commands  # discovery found the parser's subcommands

    def help_of(command):
        return command, subprocess.run([sys.executable, "-m", "so3k_driver.cli", *command, "--help"],
                                       cwd=outside, env=env, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for command, result in pool.map(help_of, commands):
            assert result.returncode == 0, f"so3k {' '.join(command)} --help: {result.stderr}"
            assert result.stdout.startswith(f"usage: so3k {' '.join(command)}"), result.stdout[:200]
