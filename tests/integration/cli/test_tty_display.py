"""The tty display driven in a real terminal (tmux), as a user sees it."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

RUNNING = re.compile(r"=> \[2/2\] RUN sleep 3\s+(\d+\.\d)s\s*$")


def _pane(socket: Path) -> str:
    return subprocess.run(["tmux", "-S", str(socket), "capture-pane", "-p", "-t", "build"],
                          capture_output=True, text=True, check=True).stdout


def _wait_for(socket: Path, predicate, what: str, deadline: float = 180.0) -> str:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        pane = _pane(socket)
        if predicate(pane):
            return pane
        time.sleep(0.1)
    raise AssertionError(f"the pane never showed {what}:\n{_pane(socket)}")


def _timer(pane: str) -> float | None:
    for line in pane.splitlines():
        match = RUNNING.search(line)
        if match:
            return float(match.group(1))
    return None


def test_running_step_timer_advances_while_the_step_is_silent(builder_config, base_image, tmp_path) -> None:
    """BuildKit's tty display refreshes on its own (every 100 ms): a step that prints nothing,
    like `RUN sleep 3`, still shows its timer counting up, and the display ends with FINISHED."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/install-deps.sh installs it)")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN sleep 3\n")
    script = tmp_path / "build.sh"
    script.write_text(
        f"{sys.executable} -m pybuildkit.appliance.cli.main --daemonless --root {tmp_path / 'root'} "
        f"--config {builder_config} build --progress tty --frontend dockerfile.v0 "
        f"--local context={ctx} --local dockerfile={ctx}\necho EXIT=$?\nsleep 600\n")
    socket = tmp_path / "tmux.sock"
    subprocess.run(["tmux", "-S", str(socket), "new-session", "-d", "-s", "build", "-x", "120", "-y", "40",
                    f"bash {script}"], check=True)
    try:
        first_pane = _wait_for(socket, lambda p: (_timer(p) or 0) > 0 and "FINISHED" not in p,
                               "the running RUN sleep 3 step")
        first = _timer(first_pane)
        second_pane = _wait_for(socket, lambda p: _timer(p) != first or "FINISHED" in p, "a redraw")
        second = _timer(second_pane)
        assert first is not None and second is not None and second > first
        final = _wait_for(socket, lambda p: "EXIT=" in p, "the build's end")
        assert "EXIT=0" in final
        header = next(line for line in final.splitlines() if line.startswith("[+] Building"))
        assert header.endswith(" FINISHED")
    finally:
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True)
