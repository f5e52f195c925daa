"""The ``so3k`` command line. Each subcommand lives in its own module exposing
``add_parser(subparsers)`` (which sets ``func``, and ``runs_model=True`` where the command runs a model in its
own process); this file only assembles them.

Errors the user can fix (any ``so3k_driver.errors.So3kError``: bad model file, bad structure, bad
option) are printed as one line on stderr and the command exits with status 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import So3kError

# Modules that register subcommands (each may register several).
COMMAND_MODULES = [
    "so3k_driver.cli.model_commands",
    "so3k_driver.cli.ipi_commands",
    "so3k_driver.cli.sample_commands",
    "so3k_driver.cli.analyze_commands",
    "so3k_driver.cli.train_commands",
    "so3k_driver.cli.label_commands",
    "so3k_driver.cli.minima_commands",
    "so3k_driver.cli.committee_commands",
]


def build_parser() -> argparse.ArgumentParser:
    from ..version import __version__

    parser = argparse.ArgumentParser(
        prog="so3k", description="SO3krates / SO3LR force fields for i-PI (units: Å, eV, eV/Å)"
    )
    parser.add_argument("--version", action="version", version=f"so3k_driver {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..evaluation.compilation_cache import use_persistent_cache
    from ..evaluation.host_memory import keep_large_buffers, restart_with_huge_pages

    args = build_parser().parse_args(argv)
    if argv is None and getattr(args, "runs_model", False):
        # a call whose scratch outgrows a thread heap (SO3LR on a compact Ac-Ala15-NHMe) is faulted in by huge
        # pages, which glibc takes only at start-up: start again in place with them (evaluation/host_memory.py)
        restart_with_huge_pages()
    # compiled models are kept between commands and for the drivers a command starts
    # (evaluation/compilation_cache.py; SO3K_COMPILATION_CACHE=0 switches it off)
    use_persistent_cache()
    # the model's CPU scratch is reused between calls, not page-faulted in anew (evaluation/host_memory.py)
    keep_large_buffers()
    try:
        return int(args.func(args) or 0)
    except (So3kError, FileNotFoundError) as error:
        print(f"so3k {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"so3k {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`so3k info MODEL | head`): stop quietly, as Unix tools do; point stdout at
        # /dev/null so that Python's flush at exit does not raise the same error again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it


if __name__ == "__main__":
    sys.exit(main())
