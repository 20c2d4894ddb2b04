"""The Dockerfile frontend on a thread of its own, under the build's time and memory budget.

Parse and convert are pure Python and CPU-bound: on the daemon's event loop a slow Dockerfile
would stall every other build, and nothing could stop it. On its own thread (with its own event
loop) the daemon keeps serving while it runs, the frontend's loops check the budget
cooperatively (`pybuildkit.solver.budget`), and the daemon stops waiting at the deadline even if
a checkpoint is late. Image lookups hop back to the daemon's loop, where the registry clients
live; the time they wait is not charged to the Dockerfile. A thread costs well under a
millisecond per build, where a subprocess with RLIMIT_AS would cost an interpreter start.
"""
from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from pybuildkit.solver.budget import Budget, active

if TYPE_CHECKING:  # the frontend is imported when a build needs it, not at client start-up
    from pybuildkit.frontend.dockerfile.builder import FrontendInputs, FrontendResult
    from pybuildkit.solver.platforms import Platform

T = TypeVar("T")

#: how long past the deadline the daemon waits for a late checkpoint before it answers anyway
GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class FrontendBudget:
    seconds: float
    max_bytes: int

    def start(self) -> Budget:
        return Budget(self.seconds, self.max_bytes, what="the Dockerfile frontend",
                      time_key="[frontend] time-budget", memory_key="[frontend] memory-budget")


async def run_budgeted(build: Callable[[FrontendInputs], Coroutine[object, object, FrontendResult]],
                       inputs: FrontendInputs,
                       limits: FrontendBudget) -> FrontendResult:
    """`build(inputs)` on a new thread under a fresh budget; BudgetExceededError when over it."""
    loop = asyncio.get_running_loop()
    budget = limits.start()
    resolver = inputs.resolve_image_config
    if resolver is not None:
        inputs = replace(inputs, resolve_image_config=_on_loop(resolver, loop, budget))
    done: Future[FrontendResult] = Future()

    def work() -> None:
        try:
            with active(budget):
                done.set_result(asyncio.run(build(inputs)))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting build, never lost
            done.set_exception(exc)

    context = contextvars.copy_context()  # the build's credentials travel with its lookups
    threading.Thread(target=context.run, args=(work,), name="frontend", daemon=True).start()
    waiting = asyncio.wrap_future(done)
    try:
        while True:
            remaining = budget.deadline + GRACE_SECONDS - time.monotonic()
            finished, _ = await asyncio.wait({waiting}, timeout=max(remaining, 0.0))
            if finished:
                return waiting.result()
            if time.monotonic() > budget.deadline + GRACE_SECONDS:  # not moved by a lookup meanwhile
                raise budget.over_time()
    finally:
        if not waiting.done():  # a cancelled or late build stops at its next checkpoint, unheard
            budget.abandoned = True
            waiting.add_done_callback(lambda late: late.exception())


def _on_loop(resolver: Callable[[str, Platform], Awaitable[T]], loop: asyncio.AbstractEventLoop,
             budget: Budget) -> Callable[[str, Platform], Awaitable[T]]:
    async def resolve(ref: str, platform: Platform) -> T:
        with budget.waiting():
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_call(resolver, ref, platform), loop))

    return resolve


async def _call(resolver: Callable[[str, Platform], Awaitable[T]], ref: str, platform: Platform) -> T:
    return await resolver(ref, platform)
