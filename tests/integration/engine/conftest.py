"""Helpers for engine tests: run `pybuildctl --daemonless` as a real subprocess."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

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


@pytest.fixture
def pybuildctl(builder_config, tmp_path_factory):
    """Returns run(args, stdin=..., root=...) -> BuildRun; each call is a new process."""
    default_root = tmp_path_factory.mktemp("state")

    def run(args: list[str], *, stdin: bytes | None = None, root: Path | None = None,
            check: bool = True, env: dict | None = None, config: Path | None = None) -> BuildRun:
        cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--daemonless",
               "--root", str(root or default_root), "--config", str(config or builder_config), "build",
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
            raise AssertionError(f"build failed ({proc.returncode}):\n{result.stderr}\n{result.logs()}")
        return result

    run.default_root = default_root  # type: ignore[attr-defined]
    return run


def llb_definition(script: str, *args: str) -> bytes:
    proc = subprocess.run([sys.executable, str(REPO / "examples" / script), *args],
                          capture_output=True, check=True)
    return proc.stdout
