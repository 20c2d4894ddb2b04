"""A build against a daemon that is not there: the client prepares its session while it dials,
so the error must still be the plain one, and the prepared session must leave nothing behind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_an_unreachable_daemon_is_named_and_nothing_stays_behind(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", f"unix://{tmp_path}/none.sock",
         "--timeout", "2", "build", "--progress", "plain", "--frontend", "dockerfile.v0",
         "--local", f"context={ctx}", "--local", f"dockerfile={ctx}"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "TMPDIR": str(scratch)})
    assert proc.returncode == 1
    assert f"cannot reach the daemon at unix://{tmp_path}/none.sock" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(scratch.iterdir()) == []
