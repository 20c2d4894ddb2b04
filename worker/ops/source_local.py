"""local:// sources: the client's directory, synced incrementally and keyed by its content."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import replace
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.progress import StatusEvent, now_ns
from pybuildkit.solver.scheduler import CacheMap, OpContext
from pybuildkit.worker.mirrorstate import MirrorState, remember, take_saved
from pybuildkit.worker.providers import LocalSyncRequest
from pybuildkit.worker.snapshot.store import Snapshot

if TYPE_CHECKING:
    from pybuildkit.worker.worker import Worker


def _patterns(attrs, key: str) -> tuple[str, ...]:
    raw = attrs.get(key)
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BuildError(f"invalid {key} attribute: {exc}") from exc
    return tuple(value or ())


def _same_root(a: Path, b: Path) -> bool:
    """Whether two directories' own headers (type, mode, owner: what a checksum covers) agree."""
    sa, sb = os.lstat(a), os.lstat(b)
    return (sa.st_mode, sa.st_uid, sa.st_gid) == (sb.st_mode, sb.st_uid, sb.st_gid)


class LocalSource:
    def __init__(self, worker: "Worker", op: pb.Op) -> None:
        self.worker = worker
        self.name = op.source.identifier.removeprefix("local://")
        attrs = op.source.attrs
        self.request = LocalSyncRequest(
            self.name, _patterns(attrs, "local.includepattern"), _patterns(attrs, "local.excludepatterns"),
            _patterns(attrs, "local.followpaths"))
        self._hint = attrs.get("local.sharedkeyhint", "")
        self._session = attrs.get("local.session", "")
        self.shared_key = ""
        self.checksum = ""

    def _mirror_key(self, providers) -> str:
        """BuildKit's `<name>:<sharedkeyhint>:<session shared key>`: successive sessions of one
        client share a mirror, so an unchanged context is not sent again."""
        owner = getattr(getattr(providers, "locals", None), "shared_key", None)
        return "|".join([self.name, self._hint, self._session if owner is None else f"shared:{owner}"])

    async def cache_map(self, ctx: OpContext, inputs: Sequence[object]) -> CacheMap:
        providers = ctx.job.providers
        if providers is None or providers.locals is None:
            raise BuildError(f"local source {self.name!r} needs a client session with local directories")
        self.shared_key = self._mirror_key(providers)
        mirror = self.worker.local_mirror(self.shared_key, self.request)
        async with self.worker.local_lock(mirror):
            started = now_ns()
            status = StatusEvent(id=f"transferring {self.name}", vertex=ctx.vertex.digest,
                                 name=f"transferring {self.name}:", started=started, timestamp=started)
            ctx.job.progress.status(replace(status))  # a copy: queued events must not change later
            saved = take_saved(mirror)  # off the disk before the mirror may change
            kept = self.worker.mirror_sums.pop(mirror, None) or saved  # a sync that fails leaves none
            tree = self.worker.checksums.take_tree(mirror)  # nor its directories' digests
            if tree is None and kept is saved and saved is not None:
                tree = saved.tree  # as the daemon that saved the state had them
            stats = await asyncio.to_thread(providers.locals.sync, self.request, mirror,
                                            kept.entries if kept is not None else None,
                                            kept.walk if kept is not None else "")
            status.current = int(getattr(stats, "bytes_copied", None) or getattr(stats, "bytes", None) or 0)
            status.completed = status.timestamp = now_ns()
            ctx.job.progress.status(status)
            listing = getattr(stats, "listing_digest", "")
            if kept is not None and getattr(stats, "unchanged", False):
                self.checksum = kept.checksum  # the client's walk is the one the mirror was synced to
                remember(self.worker.mirror_sums, mirror, replace(kept, tree=None))  # the cache keeps it
                self.worker.checksums.keep_tree(mirror, tree, ())
                return self._cache_map()
            if listing and not getattr(stats, "requested", 1) and kept is not None and kept.listing == listing:
                self.checksum = kept.checksum  # the same listing and nothing fetched: the same tree
                self.worker.checksums.keep_tree(mirror, tree, ())
            else:
                if digests := getattr(stats, "file_digests", None):
                    await asyncio.to_thread(self.worker.checksums.learn, mirror, digests)
                self.worker.checksums.keep_tree(mirror, tree, getattr(stats, "changed_paths", None))
                self.checksum = await asyncio.to_thread(self.worker.checksums.checksum, mirror, "/")
                await asyncio.to_thread(self.worker.meta.save_file_digests, self.worker.checksums.fresh())
            remember(self.worker.mirror_sums, mirror,
                     MirrorState(listing, self.checksum, getattr(stats, "entries", None) or None,
                                 getattr(stats, "walk_digest", "")))
        return self._cache_map()

    def _cache_map(self) -> CacheMap:
        digest = "sha256:" + hashlib.sha256(
            json.dumps(["local", self.checksum, self.request.include_patterns,
                        self.request.exclude_patterns, self.request.follow_paths]).encode()).hexdigest()
        return CacheMap(digest)

    def reused(self, results: Sequence[object]) -> None:
        """A cached result of this source holds the tree whose checksum its key was made of:
        what content_checksum would walk 20,000 files to find again in a fresh daemon."""
        snap = results[0] if results else None
        if self.checksum and isinstance(snap, Snapshot) and snap.layers:
            mirror = self.worker.local_mirror(self.shared_key, self.request)
            if _same_root(mirror, self.worker.snapshots.layer_path(snap.layers[-1])):
                self.worker.same_tree_as(snap, self.checksum)

    async def execute(self, ctx: OpContext, inputs: Sequence[object]) -> list[Snapshot]:
        mirror = self.worker.local_mirror(self.shared_key or self._mirror_key(ctx.job.providers), self.request)
        async with self.worker.local_lock(mirror):
            snap = await asyncio.to_thread(
                self.worker.snapshots.import_directory, mirror, None,
                description=f"local source for {self.name}", record_type="source.local", hardlink=True)
            await asyncio.to_thread(self.worker.checksums.relinked_under, mirror)
            kept = self.worker.mirror_sums.get(mirror)
            still = kept is not None and kept.checksum == self.checksum  # no sync since
            if self.checksum and still and _same_root(mirror, self.worker.snapshots.layer_path(snap.layers[-1])):
                self.worker.same_tree_as(snap, self.checksum)
        return [snap]
