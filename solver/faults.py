"""Named crash points for fault-injection tests.

`PYBUILDKIT_CRASHPOINT=<name>` makes the process SIGKILL itself when it reaches that point, so
tests can check that a daemon killed there restarts into a consistent store. Reading the
variable is the whole mechanism; in normal runs it is unset and this costs one dict lookup.
"""
from __future__ import annotations

import os
import signal

BLOB_WRITTEN_NOT_RENAMED = "blob-written-not-renamed"
SNAPSHOT_COMMITTED_NO_RECORD = "snapshot-committed-no-record"
MID_EXPORT = "mid-export"


def crashpoint(name: str) -> None:
    if os.environ.get("PYBUILDKIT_CRASHPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
