"""A daemonless build SIGKILLed during a RUN step leaves its container running, its rootfs
mounted and its bundle on disk; the next worker on the same root reaps all of it, and the
rebuild is byte-identical to a clean build."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pybuildkit.solver.llb import builder as llb
from pybuildkit.worker.recovery import RUNTIMES, mounts_under

from tests.conftest import require_root

pytestmark = pytest.mark.daemonless  # these kill the ephemeral daemon or its client
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def _containers(state_root: Path) -> list[dict]:
    found = []
    for name in RUNTIMES:
        binary = shutil.which(name)
        if binary is None or not state_root.is_dir():
            continue
        listing = subprocess.run([binary, "--root", str(state_root), "list", "--format", "json"],
                                 capture_output=True, text=True, check=False)
        if listing.returncode == 0 and listing.stdout.strip() not in ("", "null"):
            found += json.loads(listing.stdout)
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _build_until_its_step_runs(definition: bytes, root: Path, builder_config: Path,
                               tmp_path: Path) -> tuple[subprocess.Popen, list[dict]]:
    """Start `pybuildctl --daemonless` on `definition`; return once the RUN step's container runs."""
    cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--daemonless", "--root", str(root),
           "--config", str(builder_config), "build", "--progress", "plain",
           "--output", f"type=local,dest={tmp_path / 'ignored'}"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=(tmp_path / "killed.log").open("wb"),
                            env={**os.environ, **EPOCH})
    assert proc.stdin is not None
    proc.stdin.write(definition)
    proc.stdin.close()
    deadline = time.monotonic() + 120
    running: list[dict] = []
    while time.monotonic() < deadline and proc.poll() is None:
        running = [c for c in _containers(root / "executor" / "runtime") if c.get("status") == "running"]
        if running:
            break
        time.sleep(0.1)
    assert running, "the RUN step never started: " + (tmp_path / "killed.log").read_text()[-2000:]
    return proc, running


def _mounts_seen_by_the_runtime(root: Path, container_pid: int) -> list[Path]:
    """The mounts under `root` in the namespace the daemon made them in: the host's, or on a
    cgroup v1 hybrid host the daemon's own (worker/executor/cgroupview.py), seen through the
    runtime process that still waits for the container."""
    status = Path(f"/proc/{container_pid}/status").read_text().splitlines()
    runtime_pid = int(next(line.split()[1] for line in status if line.startswith("PPid:")))
    return mounts_under(root, Path(f"/proc/{runtime_pid}/mountinfo"))


def _daemon_pid(root: Path) -> int:
    """The ephemeral daemon behind --daemonless writes its pid into the root's lock file."""
    return int((root / "pybuildkitd.lock").read_text().split()[0])


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _sleeping_step(base_image: str) -> bytes:
    base = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH)
    return base.run(["/bin/sh", "-c", "sleep 8; echo survived > /result.txt"]).root().marshal().SerializeToString()


def test_a_killed_client_stops_its_ephemeral_daemon_cleanly(pybuildctl, base_image, builder_config, tmp_path) -> None:
    require_root("the build runs containers and mounts overlays")
    root = tmp_path / "client-killed"
    proc, running = _build_until_its_step_runs(_sleeping_step(base_image), root, builder_config, tmp_path)
    daemon = _daemon_pid(root)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _wait_gone(daemon, 90), "the ephemeral daemon outlived its client"
    assert not any(_alive(c["pid"]) for c in running)
    assert _containers(root / "executor" / "runtime") == []
    assert mounts_under(root) == []
    log = (tmp_path / "killed.log").read_text()
    assert "Traceback" not in log


def test_sigkill_during_run_leaves_nothing_after_restart(pybuildctl, base_image, builder_config, tmp_path) -> None:
    require_root("the build runs containers and mounts overlays")
    definition = _sleeping_step(base_image)
    root = tmp_path / "killed"
    runtime_root = root / "executor" / "runtime"
    proc, running = _build_until_its_step_runs(definition, root, builder_config, tmp_path)
    os.kill(_daemon_pid(root), signal.SIGKILL)  # the daemon crashes; its client reports it
    assert proc.wait(timeout=60) == 1
    assert "died during the build (signal 9)" in (tmp_path / "killed.log").read_text()
    pids = [c["pid"] for c in running]
    assert any(_alive(pid) for pid in pids), "the container should outlive the killed daemon"
    assert _mounts_seen_by_the_runtime(root, pids[0]), "the killed daemon should leave its rootfs mounted"

    from pybuildkit.appliance.build import make_builder
    from pybuildkit.appliance.config import load_config

    messages: list[str] = []
    builder = make_builder(load_config(builder_config, root=root), log=messages.append)
    try:
        assert not any(_alive(pid) for pid in pids)
        assert _containers(runtime_root) == []
        assert not any(runtime_root.iterdir())
        assert mounts_under(root) == []
        assert not any((root / "executor" / "bundles").iterdir())
        assert not any((root / "run").iterdir())
        assert not list((root / "snapshots" / "layers").glob("*.tmp"))
        # One line says what was removed. (The container itself is reaped silently by the
        # executor's own start-up clean-up, which runs first; recovery logs the mount and layer.)
        assert sum(m.startswith(f"recovered {root}: removed ") for m in messages) == 1, messages
    finally:
        builder.worker.close()

    pybuildctl(["--output", f"type=local,dest={tmp_path / 'again'}"], stdin=definition, root=root, env=EPOCH)
    pybuildctl(["--output", f"type=local,dest={tmp_path / 'clean'}"], stdin=definition, root=tmp_path / "fresh",
               env=EPOCH)
    assert _tree(tmp_path / "again") == _tree(tmp_path / "clean")
    assert (tmp_path / "again" / "result.txt").read_text() == "survived\n"
