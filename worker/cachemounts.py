"""Persistent cache mounts (`RUN --mount=type=cache`), with BuildKit's sharing modes.

shared: every user sees the same directory at once. private: a user that finds the directory
busy gets another instance. locked: users wait for each other.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from pybuildkit.solver.pb import ops_pb2 as pb


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    busy: set[int] = field(default_factory=set)


class CacheMounts:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._slots: dict[str, _Slot] = {}

    def directory(self, cache_id: str) -> Path:
        """Where the first instance of a cache mount lives (what cache export and import use)."""
        return self.root / f"{hashlib.sha256(cache_id.encode()).hexdigest()[:24]}-0"

    def _dir(self, key: str, instance: int) -> tuple[Path, bool]:
        path = self.root / f"{key}-{instance}"
        created = False
        if not path.exists():
            path.mkdir(parents=True)
            created = True
        return path, created

    @contextlib.asynccontextmanager
    async def acquire(self, cache_id: str, sharing: int, *, uid: int = 0, gid: int = 0,
                      mode: int = 0o755) -> AsyncIterator[tuple[Path, bool]]:
        """Yields (directory, created) for the cache `cache_id` under the sharing mode."""
        key = hashlib.sha256(cache_id.encode()).hexdigest()[:24]
        slot = self._slots.setdefault(key, _Slot())
        instance = 0
        if sharing == pb.LOCKED:
            await slot.lock.acquire()
        elif sharing == pb.PRIVATE:
            while instance in slot.busy:
                instance += 1
        slot.busy.add(instance)
        try:
            path, created = self._dir(key, instance)
            if created:
                os.chmod(path, mode)
                with contextlib.suppress(PermissionError):
                    os.chown(path, uid, gid)
            yield path, created
        finally:
            slot.busy.discard(instance)
            if sharing == pb.LOCKED:
                slot.lock.release()
