"""systemd integration without systemd as PID 1: socket activation through
`systemd-socket-activate` (LISTEN_FDS) and sd_notify messages on a socket the test holds."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def pybuildctl(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", address,
                           "--timeout", "60", *args], capture_output=True, timeout=120)


def test_the_first_connection_to_an_activated_socket_is_served(builder_config: Path, tmp_path: Path) -> None:
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.fail("systemd-socket-activate is missing (package systemd)")
    sock = tmp_path / "activated.sock"
    cmd = [activate, "-l", str(sock), "--fdname=buildkitd", sys.executable, "-m", "pybuildkit.appliance.daemon.main",
           "--root", str(tmp_path / "root"), "--config", str(builder_config), "--addr", "fd://buildkitd"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        # nothing runs yet: the daemon starts when this first client connects
        result = pybuildctl(f"unix://{sock}", "debug", "workers")
        assert result.returncode == 0, result.stderr.decode()
        assert "linux/amd64" in result.stdout.decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "serving fd://buildkitd" in out.decode()


def test_notify_socket_sees_ready_watchdog_and_stopping(builder_config: Path, tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(60)
    daemon_sock = tmp_path / "d.sock"
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "pybuildkit.appliance.daemon.main", "--root", str(tmp_path / "r"),
                             "--config", str(builder_config), "--addr", f"unix://{daemon_sock}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        messages: list[str] = []
        while not any("READY=1" in m for m in messages):
            messages.append(listener.recv(4096).decode())
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=" in ready
        # READY=1 is only sent once the socket answers
        probe = pybuildctl(f"unix://{daemon_sock}", "debug", "info")
        assert probe.returncode == 0
        while not any("WATCHDOG=1" in m for m in messages):
            messages.append(listener.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        while not any("STOPPING=1" in m for m in messages):
            messages.append(listener.recv(4096).decode())
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    assert not daemon_sock.exists()
