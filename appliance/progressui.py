"""Progress displays as buildctl prints them: plain, tty, rawjson and quiet.

Every display consumes the same SolveStatus stream (solver.progress); `auto` picks tty when
stderr is a terminal, else plain, and honours BUILDKIT_PROGRESS as buildctl does.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.progress import SolveStatus

MODES = ("auto", "tty", "plain", "rawjson", "quiet")


def resolve_mode(mode: str, stream: TextIO) -> str:
    if mode not in MODES:
        raise BuildError(f"invalid progress mode {mode!r}", hint="use one of " + ", ".join(MODES))
    if mode == "auto":
        env = os.environ.get("BUILDKIT_PROGRESS", "")
        if env in MODES and env != "auto":
            return env
        return "tty" if stream.isatty() else "plain"
    return mode


def rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano: fractional seconds with trailing zeros trimmed."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    base = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{nanos:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def go_json(value: object) -> str:
    """encoding/json's output: HTML-sensitive characters escaped as Go does."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def status_to_json(status: SolveStatus) -> dict:
    out: dict = {}
    if status.vertexes:
        items = []
        for v in status.vertexes:
            item: dict = {"digest": v.digest}
            if v.inputs:
                item["inputs"] = v.inputs
            item["name"] = v.name
            if v.started is not None:
                item["started"] = rfc3339nano(v.started)
            if v.completed is not None:
                item["completed"] = rfc3339nano(v.completed)
            if v.cached:
                item["cached"] = True
            if v.error:
                item["error"] = v.error
            if v.progress_group:
                item["progressGroup"] = {"id": v.progress_group[0], "name": v.progress_group[1],
                                         **({"weak": True} if v.progress_group[2] else {})}
            items.append(item)
        out["vertexes"] = items
    if status.statuses:
        items = []
        for s in status.statuses:
            item = {"id": s.id, "vertex": s.vertex}
            if s.name:
                item["name"] = s.name
            if s.total:
                item["total"] = s.total
            item["current"] = s.current
            item["timestamp"] = rfc3339nano(s.timestamp or time.time_ns())
            if s.started is not None:
                item["started"] = rfc3339nano(s.started)
            if s.completed is not None:
                item["completed"] = rfc3339nano(s.completed)
            items.append(item)
        out["statuses"] = items
    if status.logs:
        out["logs"] = [{"vertex": log.vertex, "stream": log.stream,
                        "data": base64.b64encode(log.data).decode(),
                        "timestamp": rfc3339nano(log.timestamp or time.time_ns())} for log in status.logs]
    if status.warnings:
        out["warnings"] = [{"vertex": w.vertex, "level": w.level,
                            "short": base64.b64encode(w.short).decode(),
                            **({"detail": [base64.b64encode(d).decode() for d in w.detail]} if w.detail else {}),
                            **({"url": w.url} if w.url else {})} for w in status.warnings]
    return out


def _human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n}{unit}" if unit == "B" else f"{n:.2f}{unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n}B"


@dataclass
class _VertexState:
    number: int
    name: str
    started: int | None = None
    completed: int | None = None
    cached: bool = False
    error: str = ""
    log_lines: list[str] = field(default_factory=list)
    printed_header: bool = False
    done_printed: bool = False
    partial: bytes = b""


class PlainPrinter:
    """`#N name`, `#N 0.123 log line`, `#N DONE 0.1s` / `#N CACHED` / `#N ERROR: ...`."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.vertices: dict[str, _VertexState] = {}
        self._last: str | None = None

    def _state(self, digest: str, name: str = "") -> _VertexState:
        st = self.vertices.get(digest)
        if st is None:
            st = _VertexState(len(self.vertices) + 1, name)
            self.vertices[digest] = st
        elif name:
            st.name = name
        return st

    def _header(self, st: _VertexState) -> None:
        if self._last is not None and self._last != st.name and not st.printed_header:
            pass
        if not st.printed_header:
            self.out.write(f"#{st.number} {st.name}\n")
            st.printed_header = True

    def update(self, status: SolveStatus) -> None:
        for v in status.vertexes:
            st = self._state(v.digest, v.name)
            st.started = v.started or st.started
            if v.cached:
                st.cached = True
            if v.completed is not None and not st.done_printed:
                self._header(st)
                self._flush_partial(v.digest, st)
                if v.error:
                    st.error = v.error
                    self.out.write(f"#{st.number} ERROR: {v.error}\n")
                elif st.cached:
                    self.out.write(f"#{st.number} CACHED\n")
                else:
                    seconds = ((v.completed - (st.started or v.completed)) / 1e9)
                    self.out.write(f"#{st.number} DONE {seconds:.1f}s\n")
                self.out.write("\n")
                st.done_printed = True
        for s in status.statuses:
            st = self._state(s.vertex)
            if s.completed is not None:
                self._header(st)
                size = f" {_human_size(s.current)} / {_human_size(s.total)}" if s.total else ""
                self.out.write(f"#{st.number} {s.name or s.id}{size} done\n")
        for log in status.logs:
            st = self._state(log.vertex)
            self._header(st)
            data = st.partial + log.data
            lines = data.split(b"\n")
            st.partial = lines.pop()
            elapsed = ((log.timestamp or time.time_ns()) - (st.started or time.time_ns())) / 1e9
            for line in lines:
                text = line.decode(errors="replace")
                st.log_lines.append(text)
                self.out.write(f"#{st.number} {max(elapsed, 0):.3f} {text}\n")
        for w in status.warnings:
            self.out.write(f"WARNING: {w.short.decode(errors='replace')}\n")
        self.out.flush()

    def _flush_partial(self, digest: str, st: _VertexState) -> None:
        if st.partial:
            text = st.partial.decode(errors="replace")
            st.log_lines.append(text)
            self.out.write(f"#{st.number} {text}\n")
            st.partial = b""

    def finish(self) -> None:
        self.out.flush()


class RawJSONPrinter:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def update(self, status: SolveStatus) -> None:
        self.out.write(go_json(status_to_json(status)) + "\n")
        self.out.flush()

    def finish(self) -> None:
        self.out.flush()


class QuietPrinter:
    def update(self, status: SolveStatus) -> None:
        return

    def finish(self) -> None:
        return


class TTYPrinter(PlainPrinter):
    """A compact live view: one line per vertex, redrawn as steps start and finish."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self._start = time.monotonic()
        self._drawn = 0

    def update(self, status: SolveStatus) -> None:
        for v in status.vertexes:
            st = self._state(v.digest, v.name)
            st.started = v.started or st.started
            st.cached = st.cached or v.cached
            if v.completed is not None:
                st.completed = v.completed
                st.error = v.error or st.error
        for log in status.logs:
            st = self._state(log.vertex)
            st.log_lines.extend(log.data.decode(errors="replace").splitlines())
            st.log_lines = st.log_lines[-6:]
        self._draw()

    def _draw(self) -> None:
        lines = [f"[+] Building {time.monotonic() - self._start:.1f}s "
                 f"({sum(1 for s in self.vertices.values() if s.completed)}/{len(self.vertices)})"]
        for st in self.vertices.values():
            if st.completed:
                tail = "CACHED" if st.cached else ("ERROR" if st.error else
                                                  f"{(st.completed - (st.started or st.completed)) / 1e9:.1f}s")
                lines.append(f" => {st.name:<60.60} {tail}")
            elif st.started:
                lines.append(f" => {st.name:<60.60} {(time.time_ns() - st.started) / 1e9:.1f}s")
                lines.extend(f" => > {line[:100]}" for line in st.log_lines[-6:])
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}A\x1b[J")
        self.out.write("\n".join(lines) + "\n")
        self._drawn = len(lines)
        self.out.flush()


def make_printer(mode: str, out: TextIO = sys.stderr):
    resolved = resolve_mode(mode, out)
    return {"plain": PlainPrinter, "tty": TTYPrinter, "rawjson": RawJSONPrinter}.get(
        resolved, lambda _o: QuietPrinter())(out)


async def display(queue: "asyncio.Queue[SolveStatus | None]", printer) -> None:
    while True:
        status = await queue.get()
        if status is None:
            break
        printer.update(status)
    printer.finish()
