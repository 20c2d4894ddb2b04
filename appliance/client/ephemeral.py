"""`--daemonless`: a private pybuildkitd for one command, as buildctl-daemonless.sh does.

The daemon takes the root's lock like any other, so concurrent daemonless runs on one root wait
for each other (`--wait-lock`) instead of breaking each other's state.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from pybuildkit.solver.errors import BuildError

START_TIMEOUT = 600.0  # covers waiting for another daemonless run's lock on the same root


@contextlib.asynccontextmanager
async def ephemeral_daemon(*, root: Path | None, config: Path | None, debug: bool,
                           meanwhile: Callable[[], object] | None = None) -> AsyncIterator[str]:
    """Start pybuildkitd on a private socket; yield its address; stop it afterwards.
    `meanwhile` runs once the daemon is started, before it is waited for (the client's own
    imports, on the other core while the daemon starts)."""
    rundir = Path(tempfile.mkdtemp(prefix="pybuildctl-"))
    sock = rundir / "buildkitd.sock"
    ready_read, ready_write = os.pipe()  # the daemon writes a line there once it serves
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
        proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL, stdout=log,
                                                    stderr=None if debug else log, preexec_fn=_die_with_parent,
                                                    pass_fds=(ready_write,))
    finally:
        os.close(ready_write)
    try:
        if meanwhile is not None:
            meanwhile()
        await _wait_ready(proc, ready_read, rundir / "daemon.log")
        try:
            yield f"unix://{sock}"
        except BuildError as exc:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 2)
            if proc.returncode is not None and proc.returncode != 0:
                how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
                raise BuildError(f"the daemonless builder died during the build ({how}): {exc.message}",
                                 hint=f"run with --debug to see its log; --root {root} stays consistent "
                                      "and the next build goes on from it") from exc
            raise
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
        shutil.rmtree(rundir, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when this client dies (killed, crashed), so a private
    daemon never outlives the one command it serves (and never keeps holding the root)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


async def _wait_ready(proc: asyncio.subprocess.Process, ready: int, log_path: Path) -> None:
    """Until the daemon's line on `ready` (it serves) or its end (it failed to start: why is in
    its log); no polling of the socket."""
    with open(ready, "rb", buffering=0) as pipe:
        reader = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            line = await asyncio.wait_for(reader.readline(), START_TIMEOUT)
        except asyncio.TimeoutError:
            raise BuildError("the daemonless builder did not start in time") from None
        finally:
            transport.close()
    if line:
        return
    await proc.wait()
    text = log_path.read_text(errors="replace").strip()
    lines = [line.removeprefix("pybuildkitd: ") for line in text.splitlines() if "error" in line or "hint" in line]
    message = "\n".join(lines) or text[-2000:] or f"exit code {proc.returncode}"
    raise BuildError(f"the daemonless builder did not start: {message}")
