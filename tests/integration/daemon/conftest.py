"""A real pybuildkitd on a private unix socket, and pybuildctl runs against it."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.daemon import Daemon, start_daemon, wait_for_socket

__all__ = ["Daemon", "start_daemon", "wait_for_socket"]


RECORDED_REGISTRY = "127.0.0.1:5000"


def start_mirrored_daemon(registry_host: str, tmp_path_factory: pytest.TempPathFactory) -> Daemon:
    """A daemon that pulls the compat recordings' 127.0.0.1:5000/busybox from the test registry."""
    config = tmp_path_factory.mktemp("cfg") / "pybuildkitd.toml"
    subprocess.run(["skopeo", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{registry_host}/library/busybox:latest", f"docker://{registry_host}/busybox:latest"],
                   check=True, capture_output=True, timeout=120)
    config.write_text(f'[registry."{RECORDED_REGISTRY}"]\nmirrors = ["{registry_host}"]\nhttp = true\n\n'
                      f'[registry."{registry_host}"]\nhttp = true\n')
    return start_daemon(tmp_path_factory.mktemp("root"), config, tmp_path_factory.mktemp("run"))


@pytest.fixture
def mirrored_daemon(registry_host: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_mirrored_daemon(registry_host, tmp_path_factory)
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def daemon(builder_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("daemon-root"), builder_config, tmp_path_factory.mktemp("daemon-run"))
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def ctl(daemon: Daemon):
    """run(*args, stdin=b"", check=True) -> CompletedProcess of `pybuildctl --addr DAEMON ...`."""

    def run(*args: str, stdin: bytes | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", daemon.address, *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=600, env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"pybuildctl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stderr.decode(errors='replace')}\n--- daemon ---\n{daemon.log()[-4000:]}")
        return proc

    return run
