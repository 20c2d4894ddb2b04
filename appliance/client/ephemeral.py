"""`--daemonless`: a private pybuildkitd for one command, as buildctl-daemonless.sh does.

The daemon's process is started by `daemon_process.py` (before the client's own imports); this
waits until it serves, yields its address, and stops it when the command is done.
"""
from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable

from pybuildkit.appliance.client.daemon_process import START_TIMEOUT, DaemonProcess
from pybuildkit.solver.errors import BuildError


@contextlib.asynccontextmanager
async def ephemeral_daemon(started: DaemonProcess, *, root: object,
                           meanwhile: Callable[[], object] | None = None) -> AsyncIterator[str]:
    """Wait for the started daemon to serve; yield its address; stop it afterwards. `meanwhile`
    runs before it is waited for (the client's own imports, on the other core while the
    daemon starts); `root` names its state in messages."""
    proc = started.proc
    try:
        if meanwhile is not None:
            meanwhile()
        await _wait_ready(started)
        try:
            yield started.address
        except BuildError as exc:
            code = await _exit_code(proc, 2)
            if code is not None and code != 0:
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                raise BuildError(f"the daemonless builder died during the build ({how}): {exc.message}",
                                 hint=f"run with --debug to see its log; --root {root} stays consistent "
                                      "and the next build goes on from it") from exc
            raise
    finally:
        if proc.poll() is None:
            proc.terminate()
            if await _exit_code(proc, 30) is None:
                proc.kill()
                await _exit_code(proc, None)
        started.log.close()
        shutil.rmtree(started.rundir, ignore_errors=True)


async def _exit_code(proc: subprocess.Popen[bytes], timeout: float | None) -> int | None:
    """The daemon's exit code once it exits within `timeout` seconds, else None."""
    def wait() -> int | None:
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    return proc.returncode if proc.poll() is not None else await asyncio.to_thread(wait)


async def _wait_ready(started: DaemonProcess) -> None:
    """Until the daemon's line on its ready pipe (it serves) or its end (it failed to start:
    why is in its log); no polling of the socket."""
    with open(started.ready, "rb", buffering=0) as pipe:
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
    code = await _exit_code(started.proc, None)
    text = started.log_path.read_text(errors="replace").strip()
    lines = [line.removeprefix("pybuildkitd: ") for line in text.splitlines() if "error" in line or "hint" in line]
    message = "\n".join(lines) or text[-2000:] or f"exit code {code}"
    raise BuildError(f"the daemonless builder did not start: {message}")
