"""fsutil packets over one gRPC stream: one packet a message (upstream's DiffCopy) or batched.

A 20,000-file context is some 80,000 packets (a STAT, a REQ, a DATA and an empty DATA for each
file). One gRPC message each costs more than the files themselves once it has crossed the
session's two gRPC layers, so between two pybuildkit ends the same packet sequence travels in
`PacketBatch` messages of up to BATCH_BYTES. Nothing about the protocol changes: a batch is sent
when it is full, or when its sender is about to wait for the other side (before a `recv` that
has nothing buffered) or is done (`flush`), so neither side ever waits for a packet that sits in
the other's buffer.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from pybuildkit.appliance.session import services as svc
from pybuildkit.appliance.session.proto import batch_pb2 as bpb
from pybuildkit.appliance.session.proto import fsutil_pb2 as fpb

BATCH_BYTES = 1 << 20  # well under the 4 MiB a Go gRPC end accepts by default
BATCH_PACKETS = 8192
PACKET_OVERHEAD = 8  # tag, length and type bytes a packet adds to a batch
STAT_OVERHEAD = 48  # a STAT's numbers (mode, ids, size, time) at most, xattrs aside

#: the batched twins of upstream's DiffCopy methods (same packets, PacketBatch messages)
BATCHED = {svc.FILESYNC_DIFFCOPY: svc.FILESYNC_DIFFCOPY_BATCHED, svc.FILESEND_DIFFCOPY: svc.FILESEND_DIFFCOPY_BATCHED}

Read = Callable[[], Awaitable[Any]]
Write = Callable[[Any], Awaitable[None]]


class PacketStream:
    """`send`/`recv`/`flush` of fsutil packets over a stream's `read`/`write` (a grpc.aio call or
    a servicer context), whose messages are Packets or, when `batched`, PacketBatches."""

    def __init__(self, read: Read, write: Write, *, batched: bool) -> None:
        self._read = read
        self._write = write
        self.batched = batched
        self._inbox: deque[fpb.Packet] = deque()
        self._outbox: list[fpb.Packet] = []
        self._outbox_bytes = 0
        self._ended = False
        self._walk_digest = ""  # to go with the next batch sent
        #: what the other side's batches said of its tree (PacketBatch.walk_digest, .unchanged)
        self.walk_digest = ""
        self.unchanged = False

    async def send(self, packet: fpb.Packet) -> None:
        if not self.batched:
            await self._write(packet)
            return
        self._outbox.append(packet)
        size = len(packet.data) + PACKET_OVERHEAD
        if packet.type == fpb.Packet.PACKET_STAT:  # an estimate: ByteSize() costs more than it saves
            size += len(packet.stat.path) + len(packet.stat.linkname) + STAT_OVERHEAD
        self._outbox_bytes += size
        if self._outbox_bytes >= BATCH_BYTES or len(self._outbox) >= BATCH_PACKETS:
            await self.flush()

    async def flush(self) -> None:
        if self._outbox:
            batch = bpb.PacketBatch(packets=self._outbox, walk_digest=self._walk_digest)
            self._outbox, self._outbox_bytes, self._walk_digest = [], 0, ""
            await self._write(batch)

    async def send_batch(self, batch: bpb.PacketBatch) -> None:
        """A batch made by the caller (a listing's STATs), sent as it is after what is buffered."""
        await self.flush()
        if self._walk_digest:
            batch.walk_digest, self._walk_digest = self._walk_digest, ""
        await self._write(batch)

    def end_listing_with(self, walk_digest: str) -> None:
        """Let the next batch sent say the digest of the walk (fsutilwire.walk_digest)."""
        self._walk_digest = walk_digest

    async def send_unchanged(self, walk_digest: str) -> None:
        """Tell the receiver that the tree is the one it offered: one batch instead of a listing."""
        await self.flush()
        await self._write(bpb.PacketBatch(walk_digest=walk_digest, unchanged=True))

    def peek(self) -> fpb.Packet | None:
        """The packet `recv` would return without waiting, if one is buffered (batched streams)."""
        return self._inbox[0] if self._inbox else None

    async def recv(self) -> fpb.Packet | None:
        """The next packet; None once the other side has ended its stream."""
        if self._inbox:
            return self._inbox.popleft()
        if self._ended:
            return None
        await self.flush()  # the other side may be waiting for what we hold
        while not self._inbox:
            message = await self._read()
            if message is grpc.aio.EOF or message is None:
                self._ended = True
                return None
            if not self.batched:
                return message
            self._inbox.extend(message.packets)
            if message.walk_digest:
                self.walk_digest = message.walk_digest
            if message.unchanged:
                self.unchanged = True
                self._inbox.append(fpb.Packet(type=fpb.Packet.PACKET_STAT))  # ends the (empty) listing
        return self._inbox.popleft()


def method_for(upstream: str, offered: Callable[[str], bool]) -> tuple[str, bool]:
    """The method to call for `upstream`'s DiffCopy and whether it is the batched one: the
    batched twin when the client offers it, else upstream's."""
    twin = BATCHED.get(upstream)
    if twin is not None and offered(twin):
        return twin, True
    return upstream, False


def message_type(batched: bool) -> Any:
    return bpb.PacketBatch if batched else fpb.Packet


def serialize(message: Any) -> bytes:
    return message.SerializeToString()
