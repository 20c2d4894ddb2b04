"""A real pybuildkitd on a private unix socket, and pybuildctl runs against it."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Daemon:
    address: str
    socket_path: Path
    root: Path
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_for_socket(path: Path, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"pybuildkitd exited {proc.returncode}:\n{log_path.read_text()}")
        if path.exists():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(path))
                    return
                except OSError:
                    pass
        time.sleep(0.05)
    raise AssertionError(f"pybuildkitd did not listen on {path}:\n{log_path.read_text()}")


def start_daemon(root: Path, config: Path | None, rundir: Path, *extra: str) -> Daemon:
    sock = rundir / "buildkitd.sock"
    log_path = rundir / "daemon.log"
    cmd = [sys.executable, "-m", "pybuildkit.appliance.daemon.main", "--root", str(root),
           "--addr", f"unix://{sock}", *extra]
    if config is not None:
        cmd += ["--config", str(config)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    wait_for_socket(sock, proc, log_path)
    return Daemon(f"unix://{sock}", sock, root, proc, log_path)


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
