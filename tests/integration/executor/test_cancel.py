"""Cancelling a running step kills its container and leaves no process, state or bundle."""
from __future__ import annotations

import asyncio
import random
import subprocess

import pytest

from .conftest import Runner


def _leftovers(runner: Runner, runtime_name: str, marker: str) -> dict[str, list[str]]:
    executor = runner.executor
    listed = subprocess.run([runtime_name, "--root", str(executor.runtime_root), "list", "-q"],
                            capture_output=True, text=True).stdout.split()
    return {
        "containers": listed,
        "state": sorted(p.name for p in executor.runtime_root.iterdir()),
        "bundles": sorted(p.name for p in executor.bundles.iterdir()),
        "processes": subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split(),
    }


def test_cancel_kills_a_running_step(runner: Runner, runtime_name: str) -> None:
    marker = f"sleep {random.randint(100000, 999999)}"

    async def scenario() -> None:
        started = asyncio.Event()
        req = runner.request("/bin/sh", "-c", f"echo started; {marker} & {marker}; wait")
        task = asyncio.create_task(runner.run_async(req, on_stdout=lambda _chunk: started.set()))
        await asyncio.wait_for(started.wait(), 30)
        assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert _leftovers(runner, runtime_name, marker) == {"containers": [], "state": [], "bundles": [], "processes": []}


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.006, 0.012])
def test_cancel_while_the_container_starts(runner: Runner, runtime_name: str, delay: float) -> None:
    marker = f"sleep {random.randint(100000, 999999)}"

    async def scenario() -> None:
        await runner.executor.probe()
        task = asyncio.create_task(runner.run_async(runner.request("/bin/sh", "-c", marker)))
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert _leftovers(runner, runtime_name, marker) == {"containers": [], "state": [], "bundles": [], "processes": []}


def test_container_ids_are_unique_per_run(runner: Runner) -> None:
    async def scenario() -> list[str]:
        req = runner.request("/bin/hostname")
        results = await asyncio.gather(*(runner.run_async(req) for _ in range(4)))
        return [r.stdout for r in results]

    assert asyncio.run(scenario()) == ["buildkitsandbox\n"] * 4
