"""A daemon saves what each local mirror holds when it stops, for the next daemon on the root; a
daemon killed after changing a mirror leaves nothing that the next one could wrongly trust."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.daemon import Daemon, start_daemon

pytestmark = pytest.mark.integration


def _build(daemon: Daemon, ctx: Path, out: Path) -> None:
    cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", daemon.address, "build",
           "--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
           "--progress", "quiet", "--output", f"type=local,dest={out}"]
    proc = subprocess.run(cmd, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace") + daemon.log()[-3000:]


def _write_in_place(path: Path, data: bytes, mtime_ns: int) -> None:
    """New content in the same inode, with a chosen mtime: what a walk sees is size, time and inode."""
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts one after another on its root; any still running at the end is stopped."""
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for daemon in started:
            daemon.stop()


def _start(started: list[Daemon], root: Path, config: Path, rundir: Path) -> Daemon:
    rundir.mkdir()
    started.append(start_daemon(root, config, rundir))
    return started[-1]


def _states(root: Path) -> list[Path]:
    return sorted((root / "local").glob("*.state"))


def test_a_killed_daemon_leaves_no_state_for_the_mirror_it_changed(base_image: str, builder_config: Path,
                                                                   tmp_path: Path, daemons: list[Daemon]) -> None:
    root = tmp_path / "root"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base_image}\nCOPY a.txt b.txt /out/\n")
    a, b = ctx / "a.txt", ctx / "b.txt"
    a.write_bytes(b"")
    b.write_bytes(b"bee\n")
    _write_in_place(a, b"one\n", 1_000_000_000_000_000_000)

    first = _start(daemons, root, builder_config, tmp_path / "run1")
    _build(first, ctx, tmp_path / "out1")
    assert first.stop() == 0
    assert _states(root), "a daemon that stops saves its mirrors' states"

    second = _start(daemons, root, builder_config, tmp_path / "run2")
    _write_in_place(a, b"two\n", 1_000_000_000_000_000_001)
    _build(second, ctx, tmp_path / "out2")
    assert (tmp_path / "out2" / "out" / "a.txt").read_bytes() == b"two\n"
    assert not _states(root), "the state was taken off the disk before the mirror changed"
    second.proc.send_signal(signal.SIGKILL)
    second.proc.wait(timeout=30)

    # a.txt is again exactly what the first daemon's state lists (same inode, size and time),
    # while the mirror holds the second daemon's "two"; b.txt changes, so the tree is new
    _write_in_place(a, b"one\n", 1_000_000_000_000_000_000)
    b.write_bytes(b"bee, again\n")
    third = _start(daemons, root, builder_config, tmp_path / "run3")
    _build(third, ctx, tmp_path / "out3")
    assert (tmp_path / "out3" / "out" / "a.txt").read_bytes() == b"one\n"
    assert (tmp_path / "out3" / "out" / "b.txt").read_bytes() == b"bee, again\n"


def test_a_restarted_daemon_rebuilds_an_unchanged_context_from_the_saved_state(base_image: str, builder_config: Path,
                                                                               tmp_path: Path, daemons: list[Daemon]) -> None:
    root = tmp_path / "root"
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(f"FROM {base_image}\nCOPY . /ctx/\n")
    for i in range(50):
        (ctx / "sub" / f"f{i}").write_text(f"file {i}\n")

    first = _start(daemons, root, builder_config, tmp_path / "run1")
    _build(first, ctx, tmp_path / "out1")
    assert first.stop() == 0
    second = _start(daemons, root, builder_config, tmp_path / "run2")
    _build(second, ctx, tmp_path / "out2")
    (ctx / "sub" / "f7").write_text("changed\n")
    _build(second, ctx, tmp_path / "out3")
    assert (tmp_path / "out2" / "ctx" / "sub" / "f7").read_text() == "file 7\n"
    assert (tmp_path / "out3" / "ctx" / "sub" / "f7").read_text() == "changed\n"
    assert sorted(p.name for p in (tmp_path / "out3" / "ctx" / "sub").iterdir()) == sorted(f"f{i}" for i in range(50))
