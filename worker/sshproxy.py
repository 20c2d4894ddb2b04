"""A per-step unix socket that forwards connections to an ssh agent.

It lets each `--mount=type=ssh` have its own owner and mode inside the container (the agent's
own socket belongs to the client), and it is where the daemon will plug the session's
ForwardAgent streams in instead of a local socket.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def agent_proxy(agent: Path, path: Path, *, uid: int, gid: int, mode: int) -> AsyncIterator[Path]:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            agent_reader, agent_writer = await asyncio.open_unix_connection(str(agent))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, agent_writer), _pipe(agent_reader, client_writer))

    server = await asyncio.start_unix_server(handle, path=str(path))
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    try:
        yield path
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
