"""`[frontend] time-budget` / `memory-budget`: one build's Dockerfile may cost the daemon only so
much, and while it is being rejected the daemon keeps serving other builds."""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon.conftest import Daemon, start_daemon

pytestmark = pytest.mark.integration

TIME_BUDGET = 4


@pytest.fixture
def budgeted_daemon(builder_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    config = tmp_path_factory.mktemp("budget-config") / "pybuildkitd.toml"
    config.write_text(builder_config.read_text() + f"\n[frontend]\ntime-budget = {TIME_BUDGET}\n")
    d = start_daemon(tmp_path_factory.mktemp("daemon-root"), config, tmp_path_factory.mktemp("daemon-run"))
    try:
        yield d
    finally:
        d.stop()


def _build(daemon: Daemon, context: Path, dest: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", daemon.address, "build",
           "--frontend", "dockerfile.v0", "--local", f"context={context}", "--local", f"dockerfile={context}",
           "--progress", "plain", "--output", f"type=local,dest={dest}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _exit_times(procs: dict[str, subprocess.Popen], start: float) -> dict[str, float]:
    """When each process ended, in seconds after `start` (their pipes hold little output)."""
    ended: dict[str, float] = {}
    while len(ended) < len(procs) and time.monotonic() - start < 120:
        for name, proc in procs.items():
            if name not in ended and proc.poll() is not None:
                ended[name] = time.monotonic() - start
        time.sleep(0.02)
    return ended


def test_a_dockerfile_over_the_time_budget_is_rejected_while_another_build_succeeds(
        budgeted_daemon: Daemon, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    # 50,000 RUN steps that each carry a 1 kB environment: far more than 4 s of conversion
    (hostile / "Dockerfile").write_bytes(b"FROM scratch\nENV A=" + b"x" * 1000 + b"\n"
                                         + b"".join(b"RUN echo $A %d\n" % i for i in range(50_000)))
    honest = tmp_path / "honest"
    honest.mkdir()
    (honest / "Dockerfile").write_text("FROM scratch\nCOPY hello /hello\n")
    (honest / "hello").write_text("still serving\n")

    start = time.monotonic()
    rejected = _build(budgeted_daemon, hostile, tmp_path / "out-hostile")
    time.sleep(1.0)  # the hostile build is in its frontend when the honest one arrives
    served = _build(budgeted_daemon, honest, tmp_path / "out-honest")
    finished = _exit_times({"served": served, "rejected": rejected}, start)
    served_err, rejected_err = served.stderr.read(), rejected.stderr.read()  # type: ignore[union-attr]

    assert served.returncode == 0, served_err.decode(errors="replace") + budgeted_daemon.log()[-3000:]
    assert (tmp_path / "out-honest" / "hello").read_text() == "still serving\n"
    message = rejected_err.decode(errors="replace")
    assert rejected.returncode != 0
    assert f"the Dockerfile frontend exceeded this build's time budget of {TIME_BUDGET} s" in message
    assert "[frontend] time-budget" in message
    assert finished["served"] < finished["rejected"]  # served while the other build's Dockerfile was being converted
    assert finished["rejected"] < 60
    # and the daemon is still there for the next one
    assert _build(budgeted_daemon, honest, tmp_path / "out-again").wait(120) == 0
