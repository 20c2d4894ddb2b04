"""One daemon, many clients: concurrent builds all succeed, identical steps run once, and a
client that goes away takes its build (and nothing else) with it."""
from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pybuildkit.solver.llb import builder as llb
from tests.integration.daemon.conftest import Daemon

pytestmark = pytest.mark.integration


def rawjson_vertices(stderr: bytes) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith("{"):
            for v in json.loads(line).get("vertexes", []):
                out.setdefault(v["digest"], {}).update(v)
    return out


def rawjson_logs(stderr: bytes) -> str:
    import base64

    text = []
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith("{"):
            text += [base64.b64decode(log["data"]).decode(errors="replace") for log in json.loads(line).get("logs", [])]
    return "".join(text)


def test_eight_clients_times_ten_builds_share_identical_steps(daemon: Daemon, base_image: str, tmp_path: Path) -> None:
    base = llb.image(base_image)
    shared = base.run(["/bin/sh", "-c", "sleep 1; echo ran-the-shared-step; echo shared > /s"]).root()

    def definition(client: int, build: int) -> bytes:
        step = shared.run(["/bin/sh", "-c", f"echo {client}-{build} > /mine"]).root()
        return step.marshal().SerializeToString()

    def one(client: int) -> list[subprocess.CompletedProcess]:
        results = []
        for build in range(10):
            cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", daemon.address, "build",
                   "--progress", "rawjson", "--output", f"type=local,dest={tmp_path / f'{client}-{build}'}"]
            results.append(subprocess.run(cmd, input=definition(client, build), capture_output=True, timeout=600))
        return results

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        runs = [r for rs in pool.map(one, range(8)) for r in rs]
    failures = [r.stderr.decode()[-800:] for r in runs if r.returncode != 0]
    assert not failures, failures
    # the step prints once per execution, into the progress of the build that executed it
    executed = sum(rawjson_logs(run.stderr).count("ran-the-shared-step") for run in runs)
    assert executed == 1
    assert all((tmp_path / f"{c}-{b}" / "mine").read_text() == f"{c}-{b}\n" for c in range(8) for b in range(10))


def _containers(daemon: Daemon) -> list[str]:
    runtime_root = daemon.root / "executor" / "runtime"
    return [p.name for p in runtime_root.iterdir()] if runtime_root.exists() else []


def _mounts_under(root: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(root))]


def test_a_killed_client_cancels_its_build_and_leaves_nothing(daemon: Daemon, base_image: str, tmp_path: Path) -> None:
    marker = f"sleeper-{os.getpid()}-{time.time_ns()}"
    state = llb.image(base_image).run(["/bin/sh", "-c", f"echo {marker}; sleep 300; echo done"]).root()
    cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", daemon.address, "build", "--progress", "plain"]
    client = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert client.stdin is not None
    client.stdin.write(state.marshal().SerializeToString())
    client.stdin.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _sleeping(marker):
        time.sleep(0.1)
    assert _sleeping(marker), "the step never started"
    client.send_signal(signal.SIGKILL)
    client.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (_sleeping(marker) or _containers(daemon)):
        time.sleep(0.1)
    assert not _sleeping(marker)
    assert _containers(daemon) == []
    assert _mounts_under(daemon.root / "snapshots" / "mounts") == []
    assert daemon.proc.poll() is None  # the daemon keeps serving


def _sleeping(marker: str) -> bool:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and b"sleep 300" in cmdline:
            return True
    return False
