"""One state root belongs to one daemon at a time.

Two processes on one root wipe each other's run directory and race on renames, so the daemon
takes an exclusive `flock` on `ROOT/pybuildkitd.lock` for its lifetime and writes its pid there.
The kernel drops the lock when the process dies, so a killed daemon never leaves a stale lock.
"""
from __future__ import annotations

import errno
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

from pybuildkit.solver.errors import BuildError

LOCK_NAME = "pybuildkitd.lock"


class RootLockedError(BuildError):
    """Another process holds the root."""

    def __init__(self, root: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"state root {root} is in use by {holder} (a pybuildkitd holds its lock)",
                         hint="stop that daemon, use its socket (--addr), or pick another --root")
        self.pid = pid


@dataclass
class RootLock:
    root: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _holder(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def acquire(root: Path, *, wait: float = 0.0) -> RootLock:
    """Lock `root`; with `wait` > 0, retry that many seconds before giving up."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise BuildError(f"cannot use state root {root}: {exc.strerror}",
                         hint="pass --root with a directory you can write") from exc
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            if time.monotonic() >= deadline:
                pid = _holder(root / LOCK_NAME)
                os.close(fd)
                raise RootLockedError(root, pid) from None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return RootLock(root, fd)
