"""Exceptions for errors the user can fix (kept apart from cli.py: under ``python -m so3k_driver.cli``
that module runs as ``__main__``, and a class defined there would exist twice)."""


class UserError(Exception):
    """An error caused by the user's input: the CLI prints it as one line and exits with status 2."""
