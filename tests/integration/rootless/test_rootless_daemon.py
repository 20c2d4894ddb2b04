"""The appliance's daemon as a plain user: socket-activated, inside rootlesskit's user namespace."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pybuildkit.solver.llb import builder as llb
from tests.integration.rootless.test_rootless import USER, rootless_user  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


@dataclass
class RootlessDaemon:
    socket_path: Path
    proc: subprocess.Popen
    work: Path
    user: pwd.struct_passwd

    @property
    def address(self) -> str:
        return f"unix://{self.socket_path}"


def _processes_of_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _uid(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def start_rootless_daemon(user: pwd.struct_passwd, builder_config: Path, *, net: str = "host",
                          env: dict[str, str] | None = None, cgroup: Path | None = None,
                          config_text: str | None = None) -> RootlessDaemon:
    """`systemd-socket-activate ... pybuildkitd --rootless` as `user`, in `cgroup` when given
    (moved there before runuser, as systemd starts a unit in its cgroup)."""
    activate = shutil.which("systemd-socket-activate")
    assert activate, "systemd-socket-activate is missing (package systemd)"
    home = Path(user.pw_dir)
    work = home / f"daemon-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    shutil.chown(work, user.pw_uid, user.pw_gid)
    config = work / "pybuildkitd.toml"
    config.write_text(config_text if config_text is not None else builder_config.read_text())
    sock = work / "buildkitd.sock"
    passed = [f"--setenv={key}" for key in env or {}]  # it passes only what it is told to
    cmd = ["runuser", "-u", USER, "--", activate, "-l", str(sock), "--fdname=buildkitd", *passed,
           sys.executable, "-m", "pybuildkit.appliance.daemon.main", "--rootless", "--rootless-net", net,
           "--root", str(work / "state"), "--config", str(config)]
    if cgroup is not None:
        cmd = ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 10
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return RootlessDaemon(sock, proc, work, user)


def stop_rootless_daemon(daemon: RootlessDaemon) -> str:
    """SIGTERM, wait, remove the work directory (files of mapped uids need the namespace); the output."""
    daemon.proc.send_signal(signal.SIGTERM)
    try:
        out, _ = daemon.proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.proc.kill()
        out, _ = daemon.proc.communicate()
    subprocess.run(["runuser", "-u", USER, "--", "rootlesskit", "rm", "-rf", str(daemon.work)], capture_output=True)
    shutil.rmtree(daemon.work, ignore_errors=True)
    return out.decode(errors="replace")


@pytest.fixture
def rootless_daemon(rootless_user, builder_config: Path) -> Iterator[RootlessDaemon]:  # noqa: F811
    # the registry is on the host's loopback, which slirp4netns keeps out: host network here
    daemon = start_rootless_daemon(rootless_user, builder_config)
    try:
        yield daemon
    finally:
        stop_rootless_daemon(daemon)


def test_socket_activated_rootless_daemon_builds_as_the_user(rootless_daemon: RootlessDaemon, base_image: str,
                                                            tmp_path: Path) -> None:
    state = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH).run(
        ["/bin/sh", "-c", "id -u > /uid.txt; echo rootless-daemon > /r.txt"]).root()
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", rootless_daemon.address,
                           "--timeout", "60", "build", "--progress", "plain", "--output", f"type=local,dest={out}"],
                          input=state.marshal().SerializeToString(), capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert (out / "r.txt").read_text() == "rootless-daemon\n"
    assert (out / "uid.txt").read_text() == "0\n"  # root inside the namespace only
    # every process of the daemon runs with the user's uid on the host
    tree = [p for p in _processes_of_tree(rootless_daemon.proc.pid) if p != rootless_daemon.proc.pid]
    uids = {_uid(p) for p in tree} - {None}
    assert uids == {rootless_daemon.user.pw_uid}, uids
