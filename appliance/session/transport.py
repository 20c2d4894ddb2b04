"""HTTP/2 over a session stream, without writing HTTP/2 ourselves.

A BuildKit session is one gRPC stream (`Control.Session`) whose messages are chunks of a byte
stream; inside it the roles turn around: the client serves gRPC and the daemon is the client.
Both ends here use real grpc.aio objects on a private unix socket, and a pump copies bytes between
that socket's one connection and the session stream.
"""
from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc

CHUNK = 1 << 18  # what the pump reads from the socket at once
MESSAGE_BYTES = 1 << 20  # a session message: chunks waiting to be sent are joined up to this
OUTBOX_BYTES = 8 << 20  # what may wait for the session stream before the pump waits
CHANNEL_OPTIONS = [("grpc.default_authority", "localhost"), ("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.max_send_message_length", 64 << 20), ("grpc.enable_retries", 0),
                   ("grpc.keepalive_time_ms", 0)]

Send = Callable[[bytes], Awaitable[None]]


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               incoming: AsyncIterator[bytes], send: Send) -> None:
    """Copy socket -> `send` and `incoming` -> socket until either side ends."""

    async def outward() -> None:
        while data := await reader.read(CHUNK):
            await send(data)

    async def inward() -> None:
        async for data in incoming:
            if data:
                writer.write(data)
                await writer.drain()

    tasks = [asyncio.ensure_future(outward()), asyncio.ensure_future(inward())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def joined(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    """The queue's chunks until None, those already waiting joined into one message of up to
    MESSAGE_BYTES: the session stream then carries few large messages when the inner gRPC
    writes many small frames, and waits for nothing that is not already there."""
    while (data := await queue.get()) is not None:
        parts, size = [data], len(data)
        while size < MESSAGE_BYTES and not queue.empty():
            more = queue.get_nowait()
            if more is None:
                yield b"".join(parts)
                return
            parts.append(more)
            size += len(more)
        yield parts[0] if len(parts) == 1 else b"".join(parts)


class Outbox:
    """What waits to go out on the session stream, at most OUTBOX_BYTES of it: the pump that
    fills it waits for room, so a peer that reads slowly slows the sender down (down to the
    exporter writing a tarball) instead of the daemon holding the whole tarball in memory."""

    def __init__(self, limit: int = 0) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._limit = limit or OUTBOX_BYTES
        self._bytes = 0
        self._room = asyncio.Event()
        self._room.set()

    async def put(self, data: bytes) -> None:
        while self._bytes >= self._limit:
            self._room.clear()
            await self._room.wait()
        self._bytes += len(data)
        self._queue.put_nowait(data)

    def close(self) -> None:
        """The end of the stream: `messages` stops once it has sent what is queued."""
        self._queue.put_nowait(None)

    async def messages(self) -> AsyncIterator[bytes]:
        async for data in joined(self._queue):
            self._bytes -= len(data)
            if self._bytes < self._limit:
                self._room.set()
            yield data


class DialedChannel:
    """The daemon's side: a grpc.aio channel whose only connection is the session stream."""

    def __init__(self, incoming: AsyncIterator[bytes], send: Send) -> None:
        self._incoming = incoming
        self._send = send
        self._dir = Path(tempfile.mkdtemp(prefix="pbk-session-"))
        self._path = self._dir / "s.sock"
        self._server: asyncio.AbstractServer | None = None
        self._connected = asyncio.Event()
        self.done = asyncio.Event()
        self.channel: grpc.aio.Channel | None = None

    async def start(self) -> grpc.aio.Channel:
        self._server = await asyncio.start_unix_server(self._accept, str(self._path), limit=CHUNK)
        self.channel = grpc.aio.insecure_channel(f"unix:{self._path}", options=CHANNEL_OPTIONS)
        return self.channel

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connected.is_set():  # a reconnect: the session stream carries one connection
            writer.close()
            return
        self._connected.set()
        if self._server is not None:
            self._server.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        try:
            await pump(reader, writer, self._incoming, self._send)
        finally:
            self.done.set()

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        if self._server is not None:
            self._server.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        self.done.set()


class ServedOverStream:
    """The client's side: a grpc.aio server for the attachables, reached through the stream."""

    def __init__(self, handlers: list[grpc.GenericRpcHandler]) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="pbk-attach-"))
        self._path = self._dir / "s.sock"
        self.server = grpc.aio.server(options=CHANNEL_OPTIONS[1:3])
        self.server.add_generic_rpc_handlers(tuple(handlers))
        self.server.add_insecure_port(f"unix:{self._path}")

    async def start(self) -> None:
        await self.server.start()

    async def serve(self, incoming: AsyncIterator[bytes], send: Send) -> None:
        reader, writer = await asyncio.open_unix_connection(str(self._path), limit=CHUNK)
        await pump(reader, writer, incoming, send)

    async def close(self) -> None:
        await self.server.stop(grace=0.5)
        shutil.rmtree(self._dir, ignore_errors=True)
