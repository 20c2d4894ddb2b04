"""BuildKit's `[internal]` progress steps of the Dockerfile frontend: `load build definition
from Dockerfile`, `load .dockerignore` and `load metadata for IMAGE`. They are not LLB vertices;
the frontend reports them so a user sees where the first seconds of a build go."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field, replace

from pybuildkit.solver.progress import ProgressWriter, StatusEvent, VertexEvent, now_ns


@dataclass
class InternalStep:
    progress: ProgressWriter
    name: str
    event: VertexEvent = field(init=False)

    def __post_init__(self) -> None:
        digest = "sha256:" + hashlib.sha256(f"{self.name}|{secrets.token_hex(8)}".encode()).hexdigest()
        self.event = VertexEvent(digest, self.name, started=now_ns())
        self.progress.vertex(replace(self.event))  # a copy: queued events must not change later

    def transferred(self, what: str, size: int) -> None:
        """`transferring dockerfile: 114B done`, the sub-step BuildKit shows under these steps."""
        stamp = now_ns()
        self.progress.status(StatusEvent(id=f"transferring {what}", vertex=self.event.digest,
                                         name=f"transferring {what}:", current=size, timestamp=stamp,
                                         started=self.event.started, completed=stamp))

    def done(self, error: str = "") -> None:
        self.event.completed = now_ns()
        self.event.error = error
        self.progress.vertex(replace(self.event))
