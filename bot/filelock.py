"""An exclusive ``fcntl.flock`` lock on a file, for git caches shared by jobs on one machine.

Why flock: several worker processes on one machine may fetch into the same bare
clone at once; git's own ``*.lock`` files make a concurrent fetch fail instead
of wait. flock waits, is released by the kernel when the holder dies (even on
SIGKILL), and needs no cleanup of stale lock files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator


class LockTimeout(Exception):
    """The lock was still held by another process after ``timeout`` seconds."""


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], timeout: float | None = None, poll: float = 0.05) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block.

    ``timeout`` None waits for as long as it takes; otherwise raise :class:`LockTimeout`.
    The lock file is left in place on purpose: deleting it would let two
    processes lock two different inodes under one name.
    """
    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise LockTimeout(f"{lock_path} still locked after {timeout:g}s") from None
                    time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
