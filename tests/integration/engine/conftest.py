"""Helpers for engine tests: run `pybuildctl` as a real subprocess, through a daemon or daemonless."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fixtures.daemon import Daemon, start_daemon

REPO = Path(__file__).resolve().parents[3]


@dataclass
class BuildRun:
    returncode: int
    stderr: str
    events: list[dict] = field(default_factory=list)
    stdout: str = ""

    def vertices(self) -> dict[str, dict]:
        """Final state of each vertex (later events complete earlier ones)."""
        out: dict[str, dict] = {}
        for event in self.events:
            for v in event.get("vertexes", []):
                out.setdefault(v["digest"], {}).update(v)
        return out

    def logs(self) -> str:
        return "".join(base64.b64decode(log["data"]).decode(errors="replace")
                       for e in self.events for log in e.get("logs", []))

    def executed_names(self) -> list[str]:
        return [v["name"] for v in self.vertices().values() if v.get("completed") and not v.get("cached")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every engine test runs through a long-running pybuildkitd (`--addr`) and through
    `--daemonless`; tests that crash or inspect the daemon itself are marked `daemonless`."""
    if "pybuildctl" in metafunc.fixturenames:
        only_daemonless = metafunc.definition.get_closest_marker("daemonless") is not None
        metafunc.parametrize("build_mode", ["daemonless"] if only_daemonless else ["daemon", "daemonless"])


@pytest.fixture
def pybuildctl(builder_config, tmp_path_factory, build_mode: str):
    """Returns run(args, stdin=..., root=...) -> BuildRun; each call is a new client process.

    In "daemon" mode the calls on the default root and config go to one pybuildkitd started for
    the test (as users share a daemon); a call naming another root or config is daemonless."""
    default_root = tmp_path_factory.mktemp("state")
    daemons: list[Daemon] = []

    def address(root: Path | None, config: Path | None) -> list[str]:
        if build_mode == "daemon" and root in (None, default_root) and config in (None, builder_config):
            if not daemons:
                daemons.append(start_daemon(default_root, builder_config, tmp_path_factory.mktemp("daemon-run")))
            return ["--addr", daemons[0].address]
        return ["--daemonless", "--root", str(root or default_root), "--config", str(config or builder_config)]

    def run(args: list[str], *, stdin: bytes | None = None, root: Path | None = None,
            check: bool = True, env: dict | None = None, config: Path | None = None) -> BuildRun:
        cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", *address(root, config), "build",
               "--progress", "rawjson", *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=600,
                              env={**os.environ, **(env or {})})
        stderr = proc.stderr.decode(errors="replace")
        events = []
        other = []
        for line in stderr.splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
            else:
                other.append(line)
        result = BuildRun(proc.returncode, "\n".join(other), events,
                          proc.stdout.decode(errors="replace") if proc.stdout else "")
        if check and proc.returncode != 0:
            daemon_log = f"\n--- daemon ---\n{daemons[0].log()[-4000:]}" if daemons else ""
            raise AssertionError(f"build failed ({proc.returncode}):\n{result.stderr}\n{result.logs()}{daemon_log}")
        return result

    run.default_root = default_root  # type: ignore[attr-defined]
    run.mode = build_mode  # type: ignore[attr-defined]
    try:
        yield run
    finally:
        for daemon in daemons:
            daemon.stop()


def llb_definition(script: str, *args: str) -> bytes:
    proc = subprocess.run([sys.executable, str(REPO / "examples" / script), *args],
                          capture_output=True, check=True)
    return proc.stdout
