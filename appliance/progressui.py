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
from pybuildkit.solver.progress import SolveStatus, StatusEvent

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


def human_size(n: float) -> str:
    """go-units' HumanSize: four significant digits, decimal units (`114B`, `2.19MB`)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"



#: the last output lines a failed step's excerpt shows
ERROR_LOG_LINES = 10


def is_canceled(error: str) -> bool:
    return error.endswith("context canceled") or error.endswith("cancelled") or error.endswith("canceled")


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
    statuses: dict[str, StatusEvent] = field(default_factory=dict)
    first_seen: int = 0


def error_excerpts(vertices: "dict[str, _VertexState]") -> str:
    """BuildKit's closing excerpt of each failed (not cancelled) step: its name and last lines."""
    out = []
    for st in sorted(vertices.values(), key=lambda s: s.first_seen):
        if not st.error or is_canceled(st.error):
            continue
        out.append("------")
        out.append(f" > {st.name}:")
        out.extend(st.log_lines[-ERROR_LOG_LINES:])
        out.append("------")
    return "".join(line + "\n" for line in out)


class PlainPrinter:
    """`#N name`, `#N 0.123 log line`, `#N DONE 0.1s` / `#N CACHED` / `#N ERROR: ...` /
    `#N CANCELED`. A step's number is given when it first shows up in the output, and its
    header is printed again when another step's lines came in between, as buildctl does."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.vertices: dict[str, _VertexState] = {}
        self._numbers = 0
        self._current: _VertexState | None = None

    def _state(self, digest: str, name: str = "") -> _VertexState:
        st = self.vertices.get(digest)
        if st is None:
            st = _VertexState(0, name, first_seen=len(self.vertices))
            self.vertices[digest] = st
        elif name:
            st.name = name
        return st

    def _enter(self, st: _VertexState) -> None:
        """Before writing a line of `st`: its number, and its header if another step spoke last."""
        if st.number == 0:
            self._numbers += 1
            st.number = self._numbers
        if self._current is not st:
            if self._current is not None and not self._current.done_printed:
                self.out.write("\n")
            self.out.write(f"#{st.number} {st.name}\n")
            st.printed_header = True
            self._current = st

    def update(self, status: SolveStatus) -> None:
        # starts first, completions last: a step's sub-steps and logs that arrive in the same
        # message as its completion are printed above its DONE line
        for v in status.vertexes:
            st = self._state(v.digest, v.name)
            st.started = v.started if v.started is not None else st.started
            if v.cached:
                st.cached = True
            if not st.done_printed and v.started is not None and not st.printed_header:
                self._enter(st)
        for s in status.statuses:
            st = self._state(s.vertex)
            st.statuses[s.id] = s
            if s.completed is not None:
                self._enter(st)
                self.out.write(f"#{st.number} {status_line(s)} done\n")
        for log in status.logs:
            st = self._state(log.vertex)
            data = st.partial + log.data
            lines = data.split(b"\n")
            st.partial = lines.pop()
            if not lines:
                continue
            self._enter(st)
            elapsed = max(((log.timestamp or time.time_ns()) - (st.started or time.time_ns())) / 1e9, 0)
            for line in lines:
                text = f"{elapsed:.3f} {line.decode(errors='replace')}"
                st.log_lines.append(text)
                self.out.write(f"#{st.number} {text}\n")
        for v in status.vertexes:
            if v.completed is not None:
                self._complete(self._state(v.digest), v)
        for w in status.warnings:
            self.out.write(f"WARNING: {w.short.decode(errors='replace')}\n")
        self.out.flush()

    def _complete(self, st: _VertexState, v) -> None:
        if st.done_printed:
            return
        self._enter(st)
        self._flush_partial(st)
        st.completed = v.completed
        if v.error:
            st.error = v.error
            if is_canceled(v.error):
                self.out.write(f"#{st.number} CANCELED\n")
            else:
                self.out.write(f"#{st.number} ERROR: {v.error}\n")
        elif st.cached:
            self.out.write(f"#{st.number} CACHED\n")
        else:
            seconds = (v.completed - (v.completed if st.started is None else st.started)) / 1e9
            self.out.write(f"#{st.number} DONE {seconds:.1f}s\n")
        self.out.write("\n")
        st.done_printed = True
        self._current = None

    def _flush_partial(self, st: _VertexState) -> None:
        if st.partial:
            text = st.partial.decode(errors="replace")
            st.log_lines.append(text)
            self.out.write(f"#{st.number} {text}\n")
            st.partial = b""

    def finish(self) -> None:
        self.out.write(error_excerpts(self.vertices))
        self.out.flush()


def status_line(s: StatusEvent, *, with_time: bool = True) -> str:
    """`sha256:abc 1.04MB / 40.1MB 0.3s` or `transferring context: 528B` (no total known)."""
    text = s.name or s.id
    if s.total:
        text += f" {human_size(s.current)} / {human_size(s.total)}"
    elif s.current or text.endswith(":"):  # `transferring context: 0B` still says how much
        text += f" {human_size(s.current)}"
    if with_time and s.started is not None:
        end = s.completed if s.completed is not None else time.time_ns()
        seconds = (end - s.started) / 1e9
        if seconds >= 0.05:
            text += f" {seconds:.1f}s"
    return text


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


def make_printer(mode: str, out: TextIO = sys.stderr):
    from pybuildkit.appliance.progresstty import TTYPrinter

    resolved = resolve_mode(mode, out)
    printers: dict = {"plain": PlainPrinter, "tty": TTYPrinter, "rawjson": RawJSONPrinter}
    return printers.get(resolved, lambda _o: QuietPrinter())(out)


#: how often a live display redraws when no event arrives (BuildKit's tty refresh)
TICK_SECONDS = 0.1


async def display(queue: "asyncio.Queue[SolveStatus | None]", printer) -> None:
    """Feed the printer; a printer with `tick()` is also called every 100 ms without events, so
    the clock and the running steps' timers move while a step is silent."""
    tick = getattr(printer, "tick", None)
    getter: asyncio.Future | None = None
    while True:
        if tick is None:
            status = await queue.get()
        else:
            # one pending get survives the timeouts, so no event is lost to a cancelled get
            getter = getter or asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter}, timeout=TICK_SECONDS)
            if not done:
                tick()
                continue
            status, getter = getter.result(), None
        if status is None:
            break
        printer.update(status)
    printer.finish()
