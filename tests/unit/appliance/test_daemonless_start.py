"""`--daemonless` when its private daemon cannot start: the client says why, from the daemon's
own error, and leaves no process or private directory behind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_daemon_that_cannot_start_is_reported_with_its_reason(tmp_path: Path) -> None:
    config = tmp_path / "pybuildkitd.toml"
    config.write_text("[worker.oci]\ngcc = true\n")  # misspelled: gc
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--daemonless", "--root", str(tmp_path / "root"),
         "--config", str(config), "build", "--progress", "plain", "--frontend", "dockerfile.v0",
         "--local", f"context={ctx}", "--local", f"dockerfile={ctx}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(scratch)})
    assert proc.returncode == 1
    assert "error: failed to solve: the daemonless builder did not start:" in proc.stderr
    assert "gcc" in proc.stderr and str(config) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(scratch.iterdir()) == []
