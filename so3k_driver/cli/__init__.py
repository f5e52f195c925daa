"""The ``so3k`` command line: each module parses one group of subcommands and prints; the work is
done by library functions in the rooms below."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
