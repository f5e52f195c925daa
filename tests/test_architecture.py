"""The import rules of the package's rooms (docs/architecture.md quotes ROOMS and SHARED from here).

Every so3k_driver/**/*.py is parsed with ``ast``; relative imports are resolved and imports inside
functions (and under ``if TYPE_CHECKING:``) count like the others.
"""

from __future__ import annotations

import ast
import builtins
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "so3k_driver"

# ----- the rule table: the one place these facts live -----------------------------------------
# Rooms from the bottom up: a module may import its own room and the rooms before it, never after.
ROOMS = ("model", "io", "evaluation", "ipi", "sampling", "training", "cli")
# Low-level modules every room may import; they import only each other.
SHARED = ("errors", "units", "version", "progress", "data")
# Imports the model room (pure JAX/Flax: no I/O, no processes) must not make.
MODEL_FORBIDDEN = ("vesin", "ase", "subprocess", "socket")
# Only the command line parses arguments.
ARGPARSE_ONLY_IN = "cli"
# -----------------------------------------------------------------------------------------------

# Known breaches, by rule: module -> why it is still there. A rule that finds only known breaches
# is marked xfail (with the reasons); anything new fails. Delete an entry when its module is fixed.
KNOWN_BREACHES: dict[str, dict[str, str]] = {}


def check(rule: str, breaches: dict[str, str]) -> None:
    """Fail on breaches (module -> description) not listed in KNOWN_BREACHES[rule]; xfail on known ones."""
    known = KNOWN_BREACHES.get(rule, {})
    new = {module: text for module, text in breaches.items() if module not in known}
    assert new == {}, f"{rule}: " + "; ".join(sorted(new.values()))
    if breaches:
        pytest.xfail(f"{rule}: " + "; ".join(f"{module}: {known[module]}" for module in sorted(breaches)))


# Modules that load only inside i-PI's ffdirect context; parsed here, never imported.
NEEDS_IPI_CONTEXT = {"so3k_driver.ipi.direct_pes", "so3k_driver.ipi.pes"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in path.parts}


MODULES = source_files()


def is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def imported_modules(name: str, tree: ast.AST) -> set[str]:
    """Absolute names of everything ``name`` imports (``from P import m`` -> ``P.m`` when m is a module)."""
    package = name if is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found


def room_of(module: str) -> str | None:
    """``so3k_driver.ipi.server`` -> ``ipi``; the package root itself -> ``so3k_driver``; outside -> None."""
    parts = module.split(".")
    if parts[0] != "so3k_driver":
        return None
    return parts[1] if len(parts) > 1 else "so3k_driver"


def rank(room: str) -> int:
    """SHARED below every room; the package root (a lazy façade) above all."""
    if room in SHARED:
        return -1
    if room in ROOMS:
        return ROOMS.index(room)
    return len(ROOMS)


TREES = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in MODULES.items()}
IMPORTS = {name: imported_modules(name, tree) for name, tree in TREES.items()}


def test_architecture_page_quotes_the_current_rule_table():
    page = (REPO / "docs" / "architecture.md").read_text()
    for name in ("ROOMS", "SHARED", "MODEL_FORBIDDEN", "ARGPARSE_ONLY_IN"):
        assert f"{name} = {globals()[name]!r}" in page.replace('"', "'"), name


def test_imports_are_resolved():
    # Relative, `from package import module` and in-function imports all land on module names.
    assert "so3k_driver.units" in IMPORTS["so3k_driver.model.so3lr"]  # from .. import units
    assert "so3k_driver.model.basis" in IMPORTS["so3k_driver.model.so3lr"]  # from . import basis
    assert "so3k_driver.evaluation.potential" in IMPORTS["so3k_driver"]  # inside __getattr__
    assert "so3k_driver.sampling.peptide" in IMPORTS["so3k_driver.sampling.analysis.observables"]  # from .. import peptide
    assert "so3k_driver.errors" in IMPORTS["so3k_driver.cli.main"]  # from ..errors import So3kError


def test_every_module_lives_in_a_known_room():
    unknown = {name for name in MODULES if room_of(name) not in (*ROOMS, *SHARED, "so3k_driver")}
    assert unknown == set()


def test_rooms_import_only_their_own_room_and_the_rooms_below():
    breaches: dict[str, str] = {}
    for name, imported in IMPORTS.items():
        room = room_of(name)
        upward = sorted(target for target in imported if (target_room := room_of(target)) is not None
                        and target_room != room and rank(target_room) > rank(room))
        if upward:
            breaches[name] = f"{name} ({room}) imports {', '.join(upward)}"
    check("rooms", breaches)


def test_nothing_imports_the_package_root():
    # `from .. import Potential` inside the package runs so3k_driver/__init__ (an import loop waiting
    # to happen); import the module that defines the name instead.
    check("root", {name: f"{name} imports so3k_driver" for name, imported in IMPORTS.items()
                   if "so3k_driver" in imported})


def test_model_room_stays_pure():
    breaches = {}
    for name, imported in IMPORTS.items():
        forbidden = sorted(t for t in imported if t.split(".")[0] in MODEL_FORBIDDEN)
        if room_of(name) == "model" and forbidden:
            breaches[name] = f"{name} imports {', '.join(forbidden)}"
    check("model_pure", breaches)


def test_only_the_cli_imports_the_cli_or_argparse():
    breaches = {}
    for name, imported in IMPORTS.items():
        offending = sorted(t for t in imported if t == "argparse" or room_of(t) == ARGPARSE_ONLY_IN)
        if room_of(name) != ARGPARSE_ONLY_IN and offending:
            breaches[name] = f"{name} imports {', '.join(offending)}"
    check("cli_only", breaches)


def test_no_library_module_launches_the_cli():
    # Starting `python -m so3k_driver.cli ...` as a subprocess is an import of the CLI by other means.
    check("cli_launch", {name: f"{name} runs `python -m so3k_driver.cli`" for name, tree in TREES.items()
                         if room_of(name) != "cli" and any(isinstance(node, ast.Constant) and node.value == "so3k_driver.cli"
                                                           for node in ast.walk(tree))})


def defined_exceptions(tree: ast.AST) -> list[str]:
    """Classes whose bases look like exceptions: builtin exceptions, the classes of errors.py,
    ``*Error``/``*Exception``/``*Warning`` names (any library's), or exception classes defined
    earlier in the same file."""
    known = {name for name, value in vars(builtins).items()
             if isinstance(value, type) and issubclass(value, BaseException)}
    known |= {node.name for node in ast.walk(TREES["so3k_driver.errors"]) if isinstance(node, ast.ClassDef)}
    local: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for base in node.bases:
            base_name = ast.unparse(base).rpartition(".")[2]
            if base_name in known or base_name in local or base_name.endswith(("Error", "Exception", "Warning")):
                local.add(node.name)
                break
    return sorted(local)


def test_exceptions_are_defined_only_in_errors():
    check("exceptions", {name: f"{name} defines {', '.join(classes)}" for name, tree in TREES.items()
                         if name != "so3k_driver.errors" and (classes := defined_exceptions(tree))})


def test_every_so3k_error_subclass_lives_in_errors():
    from so3k_driver.errors import So3kError

    for name in MODULES:
        if name not in NEEDS_IPI_CONTEXT and not name.endswith(".__main__"):  # __main__ runs the CLI
            importlib.import_module(name)
    pending, seen = [So3kError], []
    while pending:
        cls = pending.pop()
        seen.append(cls)
        pending.extend(cls.__subclasses__())
    assert sorted(f"{c.__module__}.{c.__qualname__}" for c in seen if c.__module__ != "so3k_driver.errors") == []
    assert len(seen) > 1
