"""The rootless launcher as the systemd service runs it, without systemd as PID 1: sd_notify on
a socket the test holds, the isolated slirp4netns network, and a cgroup delegated to the user
the way systemd delegates one (the test does systemd's part: mkdir and chown in cgroup v2)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybuildkit.appliance.systemd.cgroup import unified_mount
from pybuildkit.solver.llb import builder as llb
from tests.fixtures.base_image import push_base_images
from tests.fixtures.registry import Registry, start_registry
from tests.integration.rootless.test_rootless import rootless_user  # noqa: F401  (fixture)
from tests.integration.rootless.test_rootless_daemon import (
    RootlessDaemon,
    _processes_of_tree,
    start_rootless_daemon,
    stop_rootless_daemon,
)

pytestmark = pytest.mark.integration


def build(daemon: RootlessDaemon, state: llb.State, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", daemon.address,
                           "--timeout", "60", "build", "--progress", "plain", "--output", f"type=local,dest={out}"],
                          input=state.marshal().SerializeToString(), capture_output=True, timeout=300)


def pybuildctl(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", address,
                           "--timeout", "60", *args], capture_output=True, timeout=120)


def cgroup_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("pybuildkitd: cgroup:")]


def _started(pid: int) -> str | None:
    """The start time of a live `pid` (a reused pid is not a survivor, a zombie holds nothing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def test_notify_socket_sees_ready_watchdog_and_stopping_through_the_launcher(
        rootless_user, builder_config: Path) -> None:  # noqa: F811
    notify_dir = Path(rootless_user.pw_dir) / f"notify-{uuid.uuid4().hex[:8]}"
    notify_dir.mkdir()
    notify_path = notify_dir / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    os.chmod(notify_path, 0o666)  # the daemon inside the user namespace sends as the user
    listener.settimeout(60)
    daemon = start_rootless_daemon(rootless_user, builder_config,
                                   env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000",
                                        "WATCHDOG_PID": "1"})  # systemd's: the launcher drops it
    try:
        messages: list[str] = []

        def until(word: str) -> None:
            while not any(word in m for m in messages):
                messages.append(listener.recv(4096).decode())

        probe = pybuildctl(daemon.address, "debug", "info")  # the first connection activates it
        assert probe.returncode == 0, probe.stderr.decode(errors="replace")
        until("READY=1")
        assert "STATUS=" in next(m for m in messages if "READY=1" in m)
        until("WATCHDOG=1")
        assert [m for m in messages if "READY=1" in m or "WATCHDOG=1" in m][0].startswith("READY=1")
        tree = {pid: _started(pid) for pid in _processes_of_tree(daemon.proc.pid)}
        output = stop_rootless_daemon(daemon)
        until("STOPPING=1")
        assert "pybuildkitd: stopped" in output, output  # runuser itself reports SIGTERM as its status
    finally:
        if daemon.proc.poll() is None:
            stop_rootless_daemon(daemon)
        listener.close()
        shutil.rmtree(notify_dir, ignore_errors=True)
    survivors = [pid for pid, started in tree.items() if started and _started(pid) == started]
    assert not survivors, "a process of the daemon outlived the stop"
    # no systemd here: the one line that says so, and the build above still worked
    lines = cgroup_lines(output)
    assert len(lines) == 1 and "no delegated cgroup" in lines[0], output


def _host_address() -> str:
    """An address of this host that is not loopback: what slirp4netns reaches through its gateway."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            return fields[fields.index("inet") + 1].split("/")[0]
    pytest.fail("this host has no non-loopback IPv4 address for the slirp4netns test")


@pytest.fixture(scope="module")
def host_side_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The test registry on the host's own (non-loopback) address: slirp4netns runs with
    --disable-host-loopback, so the host's 127.0.0.1 is out of reach from the namespace."""
    reg = start_registry(tmp_path_factory.mktemp("host-side-registry"), bind=_host_address())
    try:
        push_base_images(reg, ("busybox",))
        yield reg
    finally:
        reg.stop()


def test_the_default_slirp_network_reaches_the_registry_on_the_host_side(
        rootless_user, builder_config: Path, host_side_registry: Registry, tmp_path: Path) -> None:  # noqa: F811
    host = host_side_registry.host
    config = f'[registry."{host}"]\nhttp = true\n'
    daemon = start_rootless_daemon(rootless_user, builder_config, net="slirp4netns", config_text=config)
    try:
        state = llb.image(f"{host}/library/busybox:latest").add_env("PATH", llb.DEFAULT_PATH).run(
            ["/bin/sh", "-c", f"wget -q -O /v2.json http://{host}/v2/ && echo reached > /ok;"
                              " cat /proc/net/route > /route"]).root()
        result = build(daemon, state, tmp_path / "out")
        assert result.returncode == 0, result.stderr.decode(errors="replace")
    finally:
        output = stop_rootless_daemon(daemon)
    assert (tmp_path / "out" / "ok").read_text() == "reached\n", output
    routes = [line.split() for line in (tmp_path / "out" / "route").read_text().splitlines()[1:]]
    default = next(r for r in routes if r[1] == "00000000")
    assert (default[0], default[2]) == ("tap0", "0202000A")  # via slirp4netns' gateway 10.0.2.2
    assert "network: RUN steps share the daemon's network: default route via 10.0.2.2 dev tap0" in output


@pytest.fixture
def delegated_cgroup(rootless_user) -> Iterator[Path]:  # noqa: F811
    """What systemd does for a unit with User= and Delegate=yes: a cgroup v2 directory owned by
    the user, with the files /sys/kernel/cgroup/delegate names."""
    mount = unified_mount(Path("/proc/self/mountinfo").read_text())
    if mount is None:
        pytest.fail("no cgroup v2 hierarchy on this host")
    directory = mount / f"pbk-test-{uuid.uuid4().hex[:8]}"
    directory.mkdir()
    delegate = Path("/sys/kernel/cgroup/delegate").read_text().split()
    for path in [directory, *(directory / name for name in delegate if (directory / name).exists())]:
        os.chown(path, rootless_user.pw_uid, rootless_user.pw_gid)
    try:
        yield directory
    finally:
        if (directory / "cgroup.kill").exists():
            (directory / "cgroup.kill").write_text("1")  # nothing of the daemon may be left anyway
        for sub in sorted((p for p in directory.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            sub.rmdir()
        directory.rmdir()


def test_a_delegated_cgroup_holds_the_daemon_in_a_leaf_and_the_steps_beside_it(
        rootless_user, builder_config: Path, delegated_cgroup: Path, base_image: str, tmp_path: Path) -> None:  # noqa: F811
    daemon = start_rootless_daemon(rootless_user, builder_config, cgroup=delegated_cgroup)
    try:
        state = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH).run(
            ["/bin/sh", "-c", "echo built > /r"]).root()
        result = build(daemon, state, tmp_path / "out")
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        assert (delegated_cgroup / "cgroup.procs").read_text() == "", "no internal processes"
        in_leaf = {int(pid) for pid in (delegated_cgroup / "daemon" / "cgroup.procs").read_text().split()}
        launcher_and_below = [p for p in _processes_of_tree(daemon.proc.pid) if _started(p)]
        assert set(launcher_and_below) <= in_leaf, "every process of the daemon sits in the leaf"
        assert (delegated_cgroup / "buildkit").is_dir()
    finally:
        output = stop_rootless_daemon(daemon)
    assert (tmp_path / "out" / "r").read_text() == "built\n"
    path = "/" + delegated_cgroup.name
    assert cgroup_lines(output) == [f"pybuildkitd: cgroup: build steps run under the delegated cgroup {path}/buildkit "
                                    "(the daemon's own cgroup, Delegate=yes; controllers: "
                                    + (" ".join(c for c in ("cpu", "cpuset", "io", "memory", "pids")
                                                if c in (delegated_cgroup.parent / "cgroup.subtree_control")
                                                .read_text().split()) or "none") + ")"], output
