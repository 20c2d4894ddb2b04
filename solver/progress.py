"""Progress events, shaped like BuildKit's SolveStatus so every display and the Control API's
Status stream can be fed from the same values."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


def now_ns() -> int:
    return time.time_ns()


@dataclass
class VertexEvent:
    digest: str
    name: str
    inputs: list[str] = field(default_factory=list)
    cached: bool = False
    started: int | None = None  # unix nanoseconds
    completed: int | None = None
    error: str = ""
    progress_group: tuple[str, str, bool] | None = None  # (id, name, weak)


@dataclass
class StatusEvent:
    """A sub-progress of a vertex (a blob download, an export step)."""

    id: str
    vertex: str
    name: str = ""
    current: int = 0
    total: int = 0
    timestamp: int = 0
    started: int | None = None
    completed: int | None = None


@dataclass
class LogEvent:
    vertex: str
    stream: int  # 1 stdout, 2 stderr
    data: bytes
    timestamp: int = 0


@dataclass
class WarningEvent:
    vertex: str
    level: int
    short: bytes
    detail: list[bytes] = field(default_factory=list)
    url: str = ""


@dataclass
class SolveStatus:
    vertexes: list[VertexEvent] = field(default_factory=list)
    statuses: list[StatusEvent] = field(default_factory=list)
    logs: list[LogEvent] = field(default_factory=list)
    warnings: list[WarningEvent] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.vertexes or self.statuses or self.logs or self.warnings)


class ProgressWriter:
    """Fan-out of SolveStatus updates to any number of watchers (CLI display, Status streams).

    Late watchers first receive the full history, as BuildKit replays a job's progress to a
    Status call that joins after the solve started.
    """

    def __init__(self) -> None:
        self._history: list[SolveStatus] = []
        self._queues: list[asyncio.Queue[SolveStatus | None]] = []
        self._closed = False

    def write(self, status: SolveStatus) -> None:
        if status.empty():
            return
        self._history.append(status)
        for queue in self._queues:
            queue.put_nowait(status)

    def vertex(self, event: VertexEvent) -> None:
        self.write(SolveStatus(vertexes=[event]))

    def log(self, vertex: str, stream: int, data: bytes) -> None:
        self.write(SolveStatus(logs=[LogEvent(vertex, stream, data, now_ns())]))

    def status(self, event: StatusEvent) -> None:
        self.write(SolveStatus(statuses=[event]))

    def warning(self, event: WarningEvent) -> None:
        self.write(SolveStatus(warnings=[event]))

    def close(self) -> None:
        self._closed = True
        for queue in self._queues:
            queue.put_nowait(None)

    def subscribe(self) -> asyncio.Queue[SolveStatus | None]:
        queue: asyncio.Queue[SolveStatus | None] = asyncio.Queue()
        for status in self._history:
            queue.put_nowait(status)
        if self._closed:
            queue.put_nowait(None)
        self._queues.append(queue)
        return queue

    @property
    def history(self) -> list[SolveStatus]:
        return list(self._history)
