"""The one error type of file actions, worded as BuildKit words them."""
from __future__ import annotations

import os

from pybuildkit.solver.errors import BuildError


class FileOpError(BuildError):
    pass


def os_message(op: str, path: str, exc: OSError) -> str:
    """Go's *os.PathError text, `mkdir /a/b: no such file or directory`, for the build's path."""
    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
    return f"{op} {path}: {reason}"


def checksum_not_found(path: str) -> FileOpError:
    """A copy source that does not exist, as BuildKit reports it while computing the cache key."""
    return FileOpError(f'failed to calculate checksum of ref: "{path}": not found')
