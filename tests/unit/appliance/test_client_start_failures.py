"""A build that cannot reach a daemon, or whose `--daemonless` daemon cannot start: the client
names the reason in one line (no traceback) and leaves nothing behind in its temp directory,
although it prepares its session while it dials."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _build(tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """pybuildctl [flags] build of a trivial Dockerfile, with TMPDIR of its own (returned)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "pybuildkit.appliance.cli.main", *flags, "build", "--progress", "plain",
         "--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(scratch)})
    assert "Traceback" not in proc.stderr
    return proc, scratch


def test_an_unreachable_daemon_is_named(tmp_path: Path) -> None:
    proc, scratch = _build(tmp_path, "--addr", f"unix://{tmp_path}/none.sock", "--timeout", "2")
    assert proc.returncode == 1
    assert f"cannot reach the daemon at unix://{tmp_path}/none.sock" in proc.stderr
    assert list(scratch.iterdir()) == []


def test_a_daemonless_daemon_that_cannot_start_is_reported_with_its_reason(tmp_path: Path) -> None:
    config = tmp_path / "pybuildkitd.toml"
    config.write_text("[worker.oci]\ngcc = true\n")  # misspelled: gc
    proc, scratch = _build(tmp_path, "--daemonless", "--root", str(tmp_path / "root"), "--config", str(config))
    assert proc.returncode == 1
    assert "error: failed to solve: the daemonless builder did not start:" in proc.stderr
    assert "gcc" in proc.stderr and str(config) in proc.stderr
    assert list(scratch.iterdir()) == []
