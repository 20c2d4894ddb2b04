"""A cooperative time and size budget for the work one build asks of the daemon's own code.

The Dockerfile frontend runs inside the daemon, so a hostile Dockerfile must not be able to take
all of its time or memory. The frontend's loops (parser lines, lexer words, dispatched
instructions, marshalled LLB ops) call `checkpoint`, which reads the budget of the build running
on this thread or task from a context variable: no budget set (tests, tools) costs one lookup.

Memory is counted as the bytes the work produces (expanded words, serialized ops), charged as
they are made, so a blow-up stops at the bound instead of after the allocation. It lives in the
solver package because the LLB marshaller, which the frontend calls, charges it too.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from pybuildkit.solver.errors import BuildError


class BudgetExceededError(BuildError):
    """One build's work went over its time or memory budget; `budget` names which one."""

    def __init__(self, message: str, *, budget: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.budget = budget


@dataclass
class Budget:
    seconds: float
    max_bytes: int
    what: str = "the work"  # "the Dockerfile frontend"
    time_key: str = ""  # the setting that raises each bound, named in the error's hint
    memory_key: str = ""
    started: float = field(default_factory=time.monotonic)
    waited: float = 0.0  # seconds spent waiting on others (image resolution), not charged
    used: int = 0
    abandoned: bool = False  # set by whoever gave up waiting: stop at the next checkpoint

    @property
    def deadline(self) -> float:
        return self.started + self.waited + self.seconds

    def over_time(self) -> BudgetExceededError:
        return BudgetExceededError(
            f"{self.what} exceeded this build's time budget of {self.seconds:g} s",
            budget="time", hint=f"simplify the build, or raise {self.time_key} in the daemon's config"
            if self.time_key else None)

    def over_memory(self) -> BudgetExceededError:
        return BudgetExceededError(
            f"{self.what} exceeded this build's memory budget of {self.max_bytes} bytes",
            budget="memory", hint=f"simplify the build, or raise {self.memory_key} in the daemon's config"
            if self.memory_key else None)

    def charge(self, nbytes: int = 0) -> None:
        self.used += nbytes
        if self.used > self.max_bytes:
            self.abandoned = True
            raise self.over_memory()
        if self.abandoned or time.monotonic() > self.deadline:
            self.abandoned = True
            raise self.over_time()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Time spent inside is someone else's (a registry's), so it moves the deadline."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.waited += time.monotonic() - start


_current: ContextVar[Budget | None] = ContextVar("pybuildkit_budget", default=None)


def checkpoint(nbytes: int = 0) -> None:
    """Charge `nbytes` to the current budget and check its deadline; raises BudgetExceededError."""
    budget = _current.get()
    if budget is not None:
        budget.charge(nbytes)


@contextlib.contextmanager
def active(budget: Budget) -> Iterator[Budget]:
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)
