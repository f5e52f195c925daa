"""One run at a time per study folder.

Two ``so3k sample run`` of one folder (a batch job submitted twice, a run started by hand beside a
queued one) would both append to its outputs, overwrite each other's checkpoints and extend the same
HILLS: the study would be silently corrupted. Whatever writes into a study folder (a run, a change of
model, ``so3k sample init --force`` moving it aside) holds ``DIR/.so3k_study.lock`` with an advisory
``flock`` for as long as it works; a second one is refused in one line naming the holder.

The kernel drops a ``flock`` when the holding process ends, however it ends (Ctrl-C, SIGKILL, a node
crash ends the process too), so a crash leaves no stale lock to clean up. The file's text only says who
holds it (process, host, start time). A file system without ``flock`` (some parallel file systems mounted
without it) runs unlocked: being unable to lock must not stop a run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path

from ..errors import UserError
from .pieces import utc_stamp

LOCK_FILE = ".so3k_study.lock"


def holder(folder) -> str | None:
    """Who holds the folder's lock ("process 123 on node7, since 2026-12-05T02:35:13Z"), None when no
    process does (or the file system has no flock)."""
    path = Path(folder) / LOCK_FILE
    if not path.is_file():
        return None
    with open(path, "r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        except OSError:
            return None
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def check_free(folder, action: str = "run it") -> None:
    """UserError when another process holds the folder's lock (the same refusal as exclusive_study)."""
    who = holder(folder)
    if who is not None:
        raise _busy(folder, who, action)


def _busy(folder, who: str, action: str) -> UserError:
    return UserError(f"{folder} is being run by {who}: wait for it to finish, or stop it (kill -TERM stops a run "
                     f"cleanly) before you {action}")


@contextlib.contextmanager
def exclusive_study(folder, action: str = "run it"):
    """Hold the study folder's lock for the ``with`` block; UserError when another process holds it.
    ``action`` ends the refusal: "... stop it before you <action>". Yields the lock's file descriptor (None
    on a file system without flock): processes started with it (RunOptions.inherited_fds) hold the lock too,
    so an i-PI that outlives a killed ``so3k sample run`` still keeps a second run out."""
    folder = Path(folder)
    with open(folder / LOCK_FILE, "a+") as handle:
        locked = _lock(handle, folder, action)
        if locked:
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} (and its i-PI) on {socket.gethostname()}, since "
                         f"{utc_stamp(time.time())}\n")
            handle.flush()
        try:
            yield handle.fileno() if locked else None
        finally:
            if locked:
                handle.seek(0)
                handle.truncate()  # still ours: the lock goes with the file's close


def _lock(handle, folder: Path, action: str) -> bool:
    """Take the lock: True, False on a file system without flock; UserError when another process holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        raise _busy(folder, handle.read().strip() or "another process", action) from None
    except OSError:
        return False
    return True


__all__ = ["LOCK_FILE", "check_free", "exclusive_study", "holder"]
