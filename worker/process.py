"""The one place that runs subprocesses, so failures turn into readable errors the same way."""
from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping, Sequence

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.asyncutil import uninterruptible


class CommandError(BuildError):
    """A helper command (runc, git, mount...) failed; carries its exit code and stderr tail."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        tail = stderr.strip().splitlines()[-5:]
        message = f"{argv[0]} failed with exit code {returncode}"
        if tail:
            message += ": " + " / ".join(tail)
        super().__init__(message)
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input: bytes | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command to completion, capturing output; raise CommandError when check fails."""
    try:
        proc = subprocess.run(
            list(argv), input=input, capture_output=True, env=dict(env) if env is not None else None,
            cwd=cwd, timeout=timeout, check=False,
        )
    except FileNotFoundError as exc:
        raise BuildError(f"{argv[0]}: command not found", hint=f"install the package providing {argv[0]}") from exc
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stderr.decode(errors="replace"))
    return proc


async def run_async(
    argv: Sequence[str],
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input: bytes | None = None,
) -> tuple[int, bytes, bytes]:
    """Await a command without blocking the event loop; returns (returncode, stdout, stderr)."""
    # The spawn must not be cancelled half-way: Python 3.11 then waits forever for pipes that
    # never connect (the transport wakes its exit waiters only once they have), which hung a
    # stopping daemon whose clean-up was running `crun kill`.
    spawn = asyncio.ensure_future(asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None, cwd=cwd,
    ))
    try:
        proc = await uninterruptible(spawn)
    except FileNotFoundError as exc:
        raise BuildError(f"{argv[0]}: command not found", hint=f"install the package providing {argv[0]}") from exc
    except asyncio.CancelledError:
        if spawn.done() and not spawn.cancelled() and spawn.exception() is None:
            await uninterruptible(_kill(spawn.result()))
        raise
    try:
        out, err = await proc.communicate(input)
    except asyncio.CancelledError:
        await uninterruptible(_kill(proc))
        raise
    assert proc.returncode is not None
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, err.decode(errors="replace"))
    return proc.returncode, out, err


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        await proc.wait()
