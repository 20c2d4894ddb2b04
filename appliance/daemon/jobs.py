"""Builds in flight, by the client-chosen ref.

buildctl opens Solve, Status and the gateway calls for one ref concurrently and in any order, so
each call finds (or creates) the same `BuildJob` and waits for the part it needs.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.platforms import Platform
from pybuildkit.solver.progress import ProgressWriter
from pybuildkit.worker.providers import Providers


@dataclass
class FrontendResult:
    """What a frontend (or a client through the gateway) hands back for the exporters."""

    platforms: list[Platform]
    definitions: list[pb.Definition]
    image_configs: list[dict | None]


@dataclass
class BuildJob:
    ref: str
    progress: ProgressWriter = field(default_factory=ProgressWriter)
    created: float = field(default_factory=time.time)
    session_id: str = ""
    providers: Providers = field(default_factory=Providers)
    entitlements: tuple[str, ...] = ()
    #: set once Control.Solve has arrived (the gateway needs its session and entitlements)
    solve_started: asyncio.Event = field(default_factory=asyncio.Event)
    #: the gateway's Return, for Solve requests that carry neither definition nor frontend
    returned: asyncio.Future[FrontendResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    #: gateway refs handed out by LLBBridge.Solve: id -> (platform, definition)
    gateway_refs: dict[str, tuple[Platform | None, pb.Definition]] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status_watchers: int = 0
    #: the client's session (pybuildkit.appliance.session.manager.Session), when it opened one
    session: Any = None


class Jobs:
    def __init__(self, *, keep_done: float = 60.0) -> None:
        self._jobs: dict[str, BuildJob] = {}
        self._keep_done = keep_done
        self._last_finished = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last build finished, with none running now (0 while one runs):
        what the daemon's own background work waits for, so that it does not land in the gap
        between two builds of a burst and slow the second."""
        if self.active():
            return 0.0
        return time.monotonic() - self._last_finished

    def get(self, ref: str) -> BuildJob:
        job = self._jobs.get(ref)
        if job is None:
            job = self._jobs[ref] = BuildJob(ref)
        return job

    def active(self) -> list[BuildJob]:
        return [j for j in self._jobs.values() if not j.done.is_set()]

    def finish(self, job: BuildJob) -> None:
        """Mark done; late Status calls still replay it for a while, then it is forgotten."""
        job.progress.close()
        job.done.set()
        self._last_finished = time.monotonic()
        if not job.returned.done():
            job.returned.cancel()
        asyncio.get_running_loop().call_later(self._keep_done, self._jobs.pop, job.ref, None)
