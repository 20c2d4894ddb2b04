"""The tty display: redraws in place, colours as BuildKit's, width from the terminal."""
from __future__ import annotations

import fcntl
import io
import os
import struct
import termios

from pybuildkit.appliance.progresstty import DEFAULT_COLORS, TTYPrinter, parse_colors
from pybuildkit.solver.progress import SolveStatus, StatusEvent, VertexEvent


def _frames(text: str) -> list[str]:
    return text.split("\x1b[J")


def test_final_frame_says_finished_and_counts_steps() -> None:
    out = io.StringIO()
    printer = TTYPrinter(out, env={"NO_COLOR": "1"})
    printer.update(SolveStatus(vertexes=[VertexEvent("a", "[1/2] FROM busybox", started=0, completed=10**8)]))
    printer.update(SolveStatus(vertexes=[VertexEvent("b", "[2/2] RUN true", started=0, completed=2 * 10**8)]))
    printer.finish()
    last = _frames(out.getvalue())[-1].splitlines()
    assert last[0].startswith("[+] Building ") and last[0].endswith("(2/2) FINISHED")
    assert last[1].startswith(" => [1/2] FROM busybox") and last[1].endswith(" 0.1s")
    assert last[2].endswith(" 0.2s")


def test_tick_redraws_without_an_event() -> None:
    """The clock and running timers are redrawn by `tick()` (called every 100 ms)."""
    out = io.StringIO()
    printer = TTYPrinter(out, env={"NO_COLOR": "1"})
    printer.update(SolveStatus(vertexes=[VertexEvent("a", "[1/1] RUN sleep 3", started=1)]))
    before = len(_frames(out.getvalue()))
    printer.tick()
    assert len(_frames(out.getvalue())) == before + 1


def test_sub_steps_show_bytes() -> None:
    """Pulls show each blob as `=> => sha256:... 12.3MB / 40.1MB`."""
    out = io.StringIO()
    printer = TTYPrinter(out, env={"NO_COLOR": "1"})
    printer.update(SolveStatus(vertexes=[VertexEvent("a", "[1/1] FROM busybox", started=0)],
                               statuses=[StatusEvent("sha256:ab", "a", "sha256:ab", current=12_300_000,
                                                     total=40_100_000, started=0)]))
    assert any(line.startswith(" => => sha256:ab 12.3MB / 40.1MB")
               for line in _frames(out.getvalue())[-1].splitlines())


def test_colours_follow_buildkit_and_no_color() -> None:
    """BuildKit: finished steps in the "run" colour, errors in "error"; NO_COLOR disables colours and
    BUILDKIT_COLORS="run=green:error=255,0,0" overrides them."""
    assert parse_colors({}) == DEFAULT_COLORS
    assert set(parse_colors({"NO_COLOR": "1"}).values()) == {""}
    custom = parse_colors({"BUILDKIT_COLORS": "run=green:error=255,0,0"})
    assert custom["run"] == "\x1b[32m" and custom["error"] == "\x1b[38;2;255;0;0m"
    out = io.StringIO()
    printer = TTYPrinter(out, env={"BUILDKIT_COLORS": "run=green"})
    printer.update(SolveStatus(vertexes=[VertexEvent("a", "[1/2] FROM x", started=0, completed=1),
                                         VertexEvent("b", "[2/2] RUN false", started=0, completed=1, error="boom")]))
    lines = _frames(out.getvalue())[-1].splitlines()
    assert lines[1].startswith("\x1b[32m => [1/2] FROM x")
    assert lines[2].startswith("\x1b[31m => ERROR [2/2] RUN false")


def test_width_follows_the_terminal() -> None:
    """Lines are cut and right-aligned to the terminal's columns, asked at every redraw."""
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            printer = TTYPrinter(tty, env={"NO_COLOR": "1"})
            for columns in (60, 100):
                fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
                printer.update(SolveStatus(vertexes=[VertexEvent("a", "[1/1] RUN " + "x" * 200, started=0,
                                                                 completed=1)]))
                tty.flush()
                data = b""
                while not data.endswith(b"0.0s\r\n"):
                    data += os.read(master, 65536)
                line = _frames(data.decode())[-1].splitlines()[1]
                assert len(line) == columns
    finally:
        os.close(master)
        os.close(slave)
