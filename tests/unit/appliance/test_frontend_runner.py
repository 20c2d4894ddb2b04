"""The Dockerfile frontend under a build's budget, on a thread of its own: it converts as it
would inline, stops at its time or memory bound with an error naming the config key, and the
daemon's event loop keeps running (and answering image lookups) while it works."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable

import pytest

from pybuildkit.appliance.frontend_runner import GRACE_SECONDS, FrontendBudget, run_budgeted
from pybuildkit.frontend.dockerfile.builder import FrontendInputs, build
from pybuildkit.solver.budget import BudgetExceededError
from pybuildkit.solver.platforms import Platform, parse_platform

GENEROUS = FrontendBudget(30.0, 512 << 20)


def inputs(dockerfile: bytes, resolver=None) -> FrontendInputs:
    return FrontendInputs(dockerfile=dockerfile, dockerfile_name="Dockerfile", dockerignore=None, attrs={},
                          build_platform=parse_platform("linux/amd64"), resolve_image_config=resolver)


def slow_dockerfile(runs: int = 20_000) -> bytes:
    """Each RUN carries a 1 kB environment into its op: seconds of honest conversion work."""
    return b"FROM scratch\nENV A=" + b"x" * 1000 + b"\n" + b"".join(b"RUN echo $A %d\n" % i for i in range(runs))


def test_a_dockerfile_converts_as_it_does_inline() -> None:
    dockerfile = b"FROM scratch\nCOPY a /a\nENV X=1\n"
    budgeted = asyncio.run(run_budgeted(build, inputs(dockerfile), GENEROUS))
    inline = asyncio.run(build(inputs(dockerfile)))
    assert [d.SerializeToString(deterministic=True) for d in budgeted.definitions] == \
        [d.SerializeToString(deterministic=True) for d in inline.definitions]
    assert budgeted.image_configs == inline.image_configs


def test_output_over_the_memory_budget_is_rejected_naming_the_key() -> None:
    with pytest.raises(BudgetExceededError) as caught:
        asyncio.run(run_budgeted(build, inputs(slow_dockerfile(200)), FrontendBudget(30.0, 64 << 10)))
    assert caught.value.budget == "memory"
    assert "the Dockerfile frontend exceeded this build's memory budget of 65536 bytes" in caught.value.message
    assert "[frontend] memory-budget" in (caught.value.hint or "")


async def rejected_beside_a_ticker(work: Awaitable[object]) -> tuple[float, list[float], BudgetExceededError]:
    """(seconds until `work` was rejected, the loop's 1 ms sleeps as measured meanwhile, the error)."""
    gaps: list[float] = []

    async def ticker() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.001)
            gaps.append(time.monotonic() - before)

    beat = asyncio.create_task(ticker())
    start = time.monotonic()
    try:
        await work
    except BudgetExceededError as exc:
        return time.monotonic() - start, gaps, exc
    finally:
        beat.cancel()
    raise AssertionError("the conversion finished inside its budget")


def test_work_over_the_time_budget_stops_and_the_event_loop_kept_running() -> None:
    elapsed, gaps, error = asyncio.run(rejected_beside_a_ticker(
        run_budgeted(build, inputs(slow_dockerfile()), FrontendBudget(0.5, 512 << 20))))
    assert error.budget == "time"
    assert "time budget of 0.5 s" in error.message and "[frontend] time-budget" in (error.hint or "")
    assert elapsed < 0.5 + GRACE_SECONDS + 0.5
    assert len(gaps) >= 10  # the loop was not stalled while the frontend worked (only slowed)


def test_image_lookups_run_on_the_daemon_loop_and_their_wait_is_not_charged() -> None:
    seen: list[int] = []

    async def resolver(ref: str, platform: Platform) -> tuple[str, dict]:
        seen.append(threading.get_ident())
        await asyncio.sleep(0.6)  # a slow registry, longer than the whole budget
        return "docker.io/library/alpine@sha256:" + "a" * 64, {"config": {}, "rootfs": {"diff_ids": []}}

    async def scenario() -> int:
        await run_budgeted(build, inputs(b"FROM alpine\nRUN true\n", resolver), FrontendBudget(0.3, 512 << 20))
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert seen == [loop_thread]


def test_a_cancelled_build_stops_its_frontend_thread() -> None:
    async def scenario() -> None:
        task = asyncio.create_task(run_budgeted(build, inputs(slow_dockerfile()), GENEROUS))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    deadline = time.monotonic() + 5
    while any(t.name == "frontend" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "frontend" for t in threading.enumerate())
