"""Ctrl-C during a step stops its container and leaves no process, mount or runtime state."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from pybuildkit.solver.llb import builder as llb


def test_interrupt_stops_the_running_step_cleanly(base_image, builder_config, tmp_path) -> None:
    root = tmp_path / "state"
    base = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH)
    state = base.run(["/bin/sh", "-c", "echo started; sleep 60"]).root()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--daemonless", "--root", str(root),
         "--config", str(builder_config), "build", "--progress", "plain"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(state.marshal().SerializeToString())
    proc.stdin.close()
    deadline = time.monotonic() + 60
    runtime_root = root / "executor" / "runtime"
    while time.monotonic() < deadline and not any(runtime_root.glob("pbk-*")):
        time.sleep(0.05)
    assert any(runtime_root.glob("pbk-*")), "the step never started"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)
    stderr = proc.stderr.read() if proc.stderr else b""
    assert proc.returncode == 130, stderr.decode(errors="replace")
    assert b"build cancelled" in stderr
    assert not list(runtime_root.glob("pbk-*")), "runtime state left behind"
    sleepers = subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True, text=True).stdout.split()
    assert not sleepers, f"step processes left running: {sleepers}"
    mounts = Path("/proc/self/mounts").read_text()
    assert str(root) not in mounts, "mounts left behind"
    assert not list((root / "executor" / "bundles").iterdir())
