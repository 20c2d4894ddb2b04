"""How long the daemon has had no build: what its background work (GC, the network note) waits for."""
from __future__ import annotations

import asyncio

from pybuildkit.appliance.daemon.jobs import Jobs


def test_a_running_build_means_no_idle_time() -> None:
    async def scenario() -> None:
        jobs = Jobs()
        job = jobs.get("ref")
        assert jobs.idle_for() == 0.0
        jobs.finish(job)
        assert 0.0 <= jobs.idle_for() < 1.0

    asyncio.run(scenario())


def test_idle_time_counts_from_the_last_build_that_finished() -> None:
    async def scenario() -> None:
        jobs = Jobs()
        jobs.finish(jobs.get("first"))
        await asyncio.sleep(0.2)
        assert jobs.idle_for() >= 0.2
        jobs.finish(jobs.get("second"))
        assert jobs.idle_for() < 0.2

    asyncio.run(scenario())
