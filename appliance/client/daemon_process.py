"""Starting the `--daemonless` daemon's process, with nothing but `subprocess`.

The client starts it before its own heavy imports (asyncio alone is ~35 ms), so the daemon's
start, which the client waits for anyway, overlaps them; `ephemeral.py` then waits for it to
serve and stops it.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

START_TIMEOUT = 600.0  # covers waiting for another daemonless run's lock on the same root


@dataclass
class DaemonProcess:
    proc: subprocess.Popen[bytes]
    rundir: Path  # the private socket and the daemon's log
    address: str
    ready: int  # the read end of the pipe the daemon writes a line to once it serves
    log: BinaryIO

    @property
    def log_path(self) -> Path:
        return self.rundir / "daemon.log"


def start_daemon_process(*, root: Path | None, config: Path | None, debug: bool) -> DaemonProcess:
    """pybuildkitd on a private socket, serving one client; it takes the root's lock like any
    daemon, so concurrent daemonless runs on one root wait for each other (`--wait-lock`)."""
    rundir = Path(tempfile.mkdtemp(prefix="pybuildctl-"))
    sock = rundir / "buildkitd.sock"
    ready_read, ready_write = os.pipe()
    cmd = [sys.executable, "-m", "pybuildkit.appliance.daemon.main", "--addr", f"unix://{sock}",
           "--wait-lock", str(START_TIMEOUT), "--ready-fd", str(ready_write), "--one-client"]
    if root is not None:
        cmd += ["--root", str(root)]
    if config is not None:
        cmd += ["--config", str(config)]
    if debug:
        cmd.append("--debug")
    log = open(rundir / "daemon.log", "w+b")
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=None if debug else log,
                                preexec_fn=_die_with_parent, pass_fds=(ready_write,))
    except BaseException:
        log.close()
        os.close(ready_read)
        shutil.rmtree(rundir, ignore_errors=True)
        raise
    finally:
        os.close(ready_write)
    return DaemonProcess(proc, rundir, f"unix://{sock}", ready_read, log)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when this client dies (killed, crashed), so a private
    daemon never outlives the one command it serves (and never keeps holding the root)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
