"""Every exception so3k_driver raises on purpose, under one base class.

The command line turns any :class:`So3kError` into one line on stderr and exit status 2; other
exceptions are bugs and keep their traceback. Library code raises these (never the CLI's own
errors), so a Python user can catch ``So3kError`` alone. Each class also derives from the builtin
that describes it best, so ``except ValueError`` keeps working for callers that used it.

Kept in a module of its own: ``python -m so3k_driver.cli`` runs a module as ``__main__``, and a
class defined there would exist twice.
"""


class So3kError(Exception):
    """Base class: an error the user can act on; its message is one line that says what to change."""


class UserError(So3kError):
    """Bad options or files given to a command or library function."""


class InputError(So3kError, ValueError):
    """A structure the model cannot evaluate (unknown element, NaN, overlapping atoms, bad shapes)."""


class ModelFileError(So3kError, ValueError):
    """A model file or directory that cannot be loaded (missing, corrupt, unsafe pickle, bad config)."""


class IpiInputError(So3kError, ValueError):
    """An i-PI XML input (or RESTART) that cannot be used as given; the message says what to change."""


class StructureMismatch(So3kError, ValueError):
    """i-PI sent a structure that does not match the driver's template (atom count)."""


class ModelBreakdown(So3kError, ValueError):
    """A force beyond any physical value at MD temperatures: the structure left the model's domain."""


class ProtocolError(So3kError, RuntimeError):
    """The i-PI peer sent something the socket protocol does not allow."""


class Disconnected(So3kError, ConnectionError):
    """The i-PI peer closed or reset the connection."""


class RunFailed(So3kError, RuntimeError):
    """A supervised run stopped abnormally; the message says which process failed and where its log is."""


class IpiCrashed(RunFailed):
    """i-PI itself died (non-zero exit, killed); the runner may resume it from its newest checkpoint."""
