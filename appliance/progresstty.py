"""buildctl's live terminal display (`--progress=tty`).

The whole view is redrawn in place: a `[+] Building 3.2s (4/7)` header, then one line per
started step with its timer right-aligned to the terminal's width, the step's sub-progress
(`=> => sha256:... 1.04MB / 40.1MB`), and the last lines of a running step's output. It redraws
on every event and every 100 ms without one (progressui.display calls `tick`), and ends with
`FINISHED`. Colours follow BuildKit: finished steps in the "run" colour, failures in "error",
cancelled steps in "cancel"; `BUILDKIT_COLORS` overrides them and `NO_COLOR` turns them off.
"""
from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import TextIO

from pybuildkit.appliance.progressui import PlainPrinter, _VertexState, error_excerpts, is_canceled, status_line
from pybuildkit.solver.progress import SolveStatus

RESET = "\x1b[0m"
#: BuildKit's default colours (progressui/colors.go): run blue, cancel and warning yellow, error red
DEFAULT_COLORS = {"run": "\x1b[34m", "cancel": "\x1b[33m", "error": "\x1b[31m", "warning": "\x1b[33m"}
_NAMED = {"default": 39, "black": 30, "red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35,
          "cyan": 36, "white": 37, "gray": 90, "light-black": 90, "light-red": 91, "light-green": 92,
          "light-yellow": 93, "light-blue": 94, "light-magenta": 95, "light-cyan": 96, "light-white": 97}
LOG_LINES = 6


def parse_colors(env: Mapping[str, str]) -> dict[str, str]:
    """BUILDKIT_COLORS="run=green:error=yellow:cancel=255,165,0"; NO_COLOR (any value) wins."""
    if env.get("NO_COLOR"):
        return {key: "" for key in DEFAULT_COLORS}
    colors = dict(DEFAULT_COLORS)
    for item in env.get("BUILDKIT_COLORS", "").split(":"):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in colors:
            continue
        if value in _NAMED:
            colors[key] = f"\x1b[{_NAMED[value]}m"
        elif re.fullmatch(r"\d{1,3},\d{1,3},\d{1,3}", value):
            r, g, b = (min(int(x), 255) for x in value.split(","))
            colors[key] = f"\x1b[38;2;{r};{g};{b}m"
    return colors


def terminal_size(out: TextIO) -> tuple[int, int]:
    """(columns, rows) of the terminal `out` writes to, asked again at every redraw."""
    try:
        size = os.get_terminal_size(out.fileno())
        return max(size.columns, 20), max(size.lines, 5)
    except (OSError, ValueError, AttributeError):
        return 80, 24


class TTYPrinter(PlainPrinter):
    def __init__(self, out: TextIO, *, env: Mapping[str, str] | None = None) -> None:
        super().__init__(out)
        self.colors = parse_colors(os.environ if env is None else env)
        self._start = time.monotonic()
        self._end: float | None = None
        self._drawn = 0
        self._warnings: list[str] = []

    def update(self, status: SolveStatus) -> None:
        for v in status.vertexes:
            st = self._state(v.digest, v.name)
            st.started = v.started if v.started is not None else st.started
            st.cached = st.cached or v.cached
            if v.started is not None and st.number == 0:
                self._numbers += 1
                st.number = self._numbers
            if v.completed is not None:
                st.completed = v.completed
                st.error = v.error or st.error
        for s in status.statuses:
            self._state(s.vertex).statuses[s.id] = s
        for log in status.logs:
            st = self._state(log.vertex)
            data = st.partial + log.data
            lines = data.split(b"\n")
            st.partial = lines.pop()
            elapsed = max(((log.timestamp or time.time_ns()) - (st.started or time.time_ns())) / 1e9, 0)
            st.log_lines.extend(f"{elapsed:.3f} {line.decode(errors='replace')}" for line in lines)
            del st.log_lines[:-20]
        for w in status.warnings:
            self._warnings.append(w.short.decode(errors="replace"))
        self._draw()

    def tick(self) -> None:
        self._draw()

    def finish(self) -> None:
        self._end = time.monotonic()
        self._draw()
        for warning in self._warnings:
            self.out.write(f"{self.colors['warning']}WARNING: {warning}{RESET if self.colors['warning'] else ''}\n")
        self.out.write(error_excerpts(self.vertices))
        self.out.flush()

    # -- drawing ---------------------------------------------------------------------------

    def _paint(self, text: str, key: str) -> str:
        color = self.colors.get(key, "")
        return f"{color}{text}{RESET}" if color else text

    def _line(self, left: str, right: str, width: int) -> str:
        room = width - len(right) - 1
        if len(left) > room:
            left = left[:max(room - 3, 0)] + "..."
        return left.ljust(room) + " " + right

    def _vertex_lines(self, st: _VertexState, width: int, now_ns: int) -> list[str]:
        end = st.completed if st.completed is not None else now_ns
        seconds = max((end - (end if st.started is None else st.started)) / 1e9, 0)
        prefix = ""
        key = ""
        if st.completed is not None:
            key = "run"
            if st.error:
                prefix, key = ("CANCELED ", "cancel") if is_canceled(st.error) else ("ERROR ", "error")
            elif st.cached:
                prefix = "CACHED "
        lines = [self._paint(self._line(f" => {prefix}{st.name}", f"{seconds:.1f}s", width), key)]
        for s in st.statuses.values():
            s_end = s.completed if s.completed is not None else now_ns
            s_seconds = max((s_end - (s_end if s.started is None else s.started)) / 1e9, 0)
            lines.append(self._paint(self._line(f" => => {status_line(s, with_time=False)}", f"{s_seconds:.1f}s",
                                                width), key))
        if st.completed is None:
            for text in st.log_lines[-LOG_LINES:]:
                lines.append(self._line(f" => => # {text}", "", width).rstrip())
        return lines

    def _draw(self) -> None:
        width, rows = terminal_size(self.out)
        now = time.time_ns()
        elapsed = (self._end or time.monotonic()) - self._start
        shown = sorted((st for st in self.vertices.values() if st.number), key=lambda s: s.number)
        done = sum(1 for st in shown if st.completed is not None)
        header = f"[+] Building {elapsed:.1f}s ({done}/{len(shown)})"
        if self._end is not None:
            header += " FINISHED"
        body: list[str] = []
        for st in shown:
            body.extend(self._vertex_lines(st, width, now))
        if self._end is None and len(body) > rows - 2:
            body = body[-(rows - 2):]  # while running, the newest steps stay in view
        lines = [header, *body]
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}A\r\x1b[J")
        self.out.write("\n".join(lines) + "\n")
        self._drawn = len(lines)
        self.out.flush()
