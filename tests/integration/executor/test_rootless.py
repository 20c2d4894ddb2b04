"""The executor as mapped root inside rootlesskit, started by an unprivileged user.

Skips with the reason when rootlesskit cannot start here (no subuid range, no /dev/net/tun...).
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import host_busybox, make_busybox_rootfs

USER = "pbk-test"
DRIVER = Path(__file__).with_name("rootless_driver.py")
ROOTLESSKIT = ["rootlesskit", "--net=slirp4netns", "--copy-up=/etc", "--disable-host-loopback"]


@pytest.fixture(scope="module")
def rootless_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to create the unprivileged test user")
    for tool in ("rootlesskit", "slirp4netns", "runuser", "useradd"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", USER], check=True, capture_output=True)  # also writes /etc/subuid
        return pwd.getpwnam(USER)


@pytest.fixture
def workdir(rootless_user: pwd.struct_passwd, busybox_template: Path) -> Iterator[Path]:
    """A directory the test user owns, holding a busybox rootfs it owns (root inside the namespace)."""
    tun = Path("/dev/net/tun")
    if tun.exists() and stat.S_IMODE(tun.stat().st_mode) & 0o006 != 0o006:
        tun.chmod(0o666)  # a udev rule does this on real hosts; slirp4netns needs it
    work = Path(rootless_user.pw_dir) / f"executor-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    busybox = host_busybox()
    assert busybox is not None
    applets = [p.name for p in (busybox_template / "bin").iterdir()]
    make_busybox_rootfs(work / "rootfs", busybox, applets)
    subprocess.run(["chown", "-R", f"{rootless_user.pw_uid}:{rootless_user.pw_gid}", str(work)], check=True)
    yield work
    subprocess.run(["runuser", "-u", USER, "--", "rootlesskit", "rm", "-rf", str(work)], capture_output=True)
    shutil.rmtree(work, ignore_errors=True)


def run_rootless(work: Path, runtime: str, network: str, user: str, *args: str) -> dict[str, object]:
    python = Path(sys.prefix) / "bin" / "python"
    proc = subprocess.run(
        ["runuser", "-u", USER, "--", *ROOTLESSKIT, f"--state-dir={work / 'rootlesskit'}",
         str(python), str(DRIVER), str(work / "state"), str(work / "rootfs"), runtime, network, user, *args],
        capture_output=True, text=True, timeout=120, cwd=str(work))
    if proc.returncode != 0 and not proc.stdout.strip():
        if "rootlesskit" in proc.stderr.lower() and "python" not in proc.stderr.lower():
            pytest.skip(f"rootlesskit cannot start here: {proc.stderr.strip().splitlines()[-1:]}")
        raise AssertionError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_runs_a_step_as_mapped_root(workdir: Path, runtime_name: str) -> None:
    report = run_rootless(workdir, runtime_name, "sandbox", "root", "/bin/sh", "-c", "id -u; hostname")
    assert report["in_user_namespace"] and report["rootless"]
    assert report["runtime"] == runtime_name
    assert (report["code"], report["stdout"]) == (0, "0\nbuildkitsandbox\n"), report
    assert report["leftovers"] == []


def test_runs_a_step_as_a_mapped_user(workdir: Path, runtime_name: str) -> None:
    report = run_rootless(workdir, runtime_name, "sandbox", "builder", "/bin/id")
    assert report["code"] == 0, report
    assert str(report["stdout"]).startswith("uid=1000(builder) gid=1000(builder)")


def test_network_none_inside_rootlesskit(workdir: Path, runtime_name: str) -> None:
    report = run_rootless(workdir, runtime_name, "none", "root", "/bin/cat", "/proc/net/dev")
    assert report["code"] == 0, report
    interfaces = [line.split(":")[0].strip() for line in str(report["stdout"]).splitlines()[2:]]
    assert interfaces == ["lo"]


def test_sandbox_network_is_rootlesskits(workdir: Path, runtime_name: str) -> None:
    report = run_rootless(workdir, runtime_name, "sandbox", "root", "/bin/cat", "/proc/net/dev")
    interfaces = sorted(line.split(":")[0].strip() for line in str(report["stdout"]).splitlines()[2:])
    assert interfaces == ["lo", "tap0"], report
