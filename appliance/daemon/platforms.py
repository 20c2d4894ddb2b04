"""The platforms the worker runs, proven by running a probe program for each emulator.

Only the worker records of ListWorkers and the gateway's Ping show them, so the daemon serves
without waiting for the probe (~30 ms in a fresh root, the emulators' starts); it runs in a
thread from the start, and the first record waits for it.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def probe_platforms(root: Path) -> list[str]:
    """The proven platforms, remembered in `root` per boot and per set of binfmt handlers."""
    from pybuildkit.binfmt.emulator import BINFMT_MISC
    from pybuildkit.binfmt.probe import supported_platforms

    key = hashlib.sha256()
    try:
        key.update(Path("/proc/sys/kernel/random/boot_id").read_bytes())
        for entry in sorted(BINFMT_MISC.iterdir()):
            key.update(entry.name.encode() + entry.read_bytes())
    except OSError:
        pass
    key.update(shutil.which("qemu-aarch64-static", path="/usr/bin") and b"qemu" or b"")
    cache = root / "platforms.json"
    try:
        saved = json.loads(cache.read_text())
        if saved.get("key") == key.hexdigest():
            return list(saved["platforms"])
    except (OSError, ValueError, KeyError):
        pass
    platforms = list(supported_platforms())
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key.hexdigest(), "platforms": platforms}))
    os.replace(tmp, cache)
    return platforms


class WorkerPlatforms:
    """One probe per daemon; `known` is told the result."""

    def __init__(self, root: Path, known: Callable[[list[str]], None] = lambda platforms: None) -> None:
        self._root = root
        self._known = known
        self._probe: asyncio.Task[list[str]] | None = None

    def start(self) -> None:
        if self._probe is None:
            self._probe = asyncio.ensure_future(self._run())

    async def get(self) -> list[str]:
        self.start()
        assert self._probe is not None
        return list(await asyncio.shield(self._probe))  # a cancelled request leaves the probe running

    async def _run(self) -> list[str]:
        platforms = await asyncio.to_thread(probe_platforms, self._root)
        self._known(platforms)
        return platforms
