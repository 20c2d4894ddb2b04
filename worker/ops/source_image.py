"""docker-image:// sources: resolve in the registry, fetch layers, unpack each into a layer."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.platforms import Platform
from pybuildkit.solver.scheduler import CacheMap, OpContext
from pybuildkit.solver.progress import StatusEvent, now_ns
from pybuildkit.worker.asyncutil import gather_or_cancel
from pybuildkit.worker.snapshot.store import Snapshot

if TYPE_CHECKING:
    from pybuildkit.worker.registry.client import ResolvedImage
    from pybuildkit.worker.worker import Worker


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """OCI ChainIDs: a layer stack's identity, independent of compression."""
    chain: list[str] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            chain.append("sha256:" + hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest())
    return chain


class ImageSource:
    def __init__(self, worker: "Worker", op: pb.Op) -> None:
        self.worker = worker
        self.op = op
        self.ref = op.source.identifier.removeprefix("docker-image://")
        self.platform = Platform.from_pb(op.platform) if op.HasField("platform") else worker.platform
        self.resolved: "ResolvedImage | None" = None

    async def cache_map(self, ctx: OpContext, inputs: Sequence[object]) -> CacheMap:
        self.resolved = await self.worker.resolve_image(self.ref, self.platform, ctx.job)
        diff_ids = self.resolved.config.get("rootfs", {}).get("diff_ids", [])
        chain = chain_ids(diff_ids)
        identity = chain[-1] if chain else "scratch"
        digest = "sha256:" + hashlib.sha256(f"image:{identity}".encode()).hexdigest()
        return CacheMap(digest)

    async def execute(self, ctx: OpContext, inputs: Sequence[object]) -> list[Snapshot]:
        assert self.resolved is not None
        return [await self.worker.unpack_image(self.resolved, ctx)]


async def fetch_layers(worker: "Worker", resolved: "ResolvedImage", ctx: OpContext | None) -> None:
    """Download every missing layer blob concurrently, reporting progress per blob."""

    async def one(desc) -> None:
        if worker.content.has(desc.digest):
            return
        started = now_ns()
        status = StatusEvent(id=desc.digest, vertex=ctx.vertex.digest if ctx else "",
                             name=f"sha256:{desc.digest.split(':')[1][:12]}", total=desc.size,
                             started=started, timestamp=started)

        def progress(current: int, total: int) -> None:
            if ctx is not None:
                status.current, status.timestamp = current, now_ns()
                ctx.job.progress.status(status)

        await worker.registry.fetch_blob(resolved.ref, desc, progress)
        if ctx is not None:
            status.current, status.completed = desc.size, now_ns()
            ctx.job.progress.status(status)

    await gather_or_cancel(*(one(d) for d in resolved.layers))
