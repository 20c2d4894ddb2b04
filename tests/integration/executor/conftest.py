"""Fixtures for executor tests: a real busybox root filesystem and an Executor per runtime.

The rootfs is made from the host's Debian busybox-static (a static binary plus one symlink per
applet), with a user database holding root, `builder` (1000) and a supplementary group, so
`id` has something to show.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pybuildkit.worker.executor import ExecRequest, Executor

PASSWD = "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000:builder:/home/builder:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:builder\nbuilder:x:1000:\n"
FIXTURES = Path("/var/cache/pybuildkit-fixtures")


def host_busybox() -> Path | None:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.is_file() and b"statically linked" in subprocess.run(
                ["file", "-L", str(path)], capture_output=True).stdout:
            return path
    found = shutil.which("busybox")
    return Path(found) if found else None


def make_busybox_rootfs(root: Path, busybox: Path, applets: list[str]) -> Path:
    """A minimal root filesystem: /bin/busybox, applet symlinks, /etc/passwd and /etc/group."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    for directory in ("etc", "tmp", "root", "home/builder", "proc", "dev", "sys"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    os.chown(root / "home" / "builder", 1000, 1000)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


@pytest.fixture(scope="session")
def busybox_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root: starts containers")
    busybox = host_busybox()
    if busybox is None:
        pytest.skip("no static busybox on this host (apt-get install busybox-static)")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout.split()
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs", busybox, applets)


@pytest.fixture
def rootfs(busybox_template: Path, tmp_path: Path) -> Path:
    """A fresh writable copy per test, so steps may change it."""
    target = tmp_path / "rootfs"
    shutil.copytree(busybox_template, target, symlinks=True)
    return target


def _runtime_params() -> list[object]:
    return [pytest.param(name, marks=pytest.mark.skipif(shutil.which(name) is None, reason=f"{name} not installed"))
            for name in ("crun", "runc")]


@pytest.fixture(params=_runtime_params())
def runtime_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass
class Runner:
    """Runs requests synchronously for tests; each call gets its own event loop."""

    executor: Executor
    rootfs: Path
    logs: list[str] = field(default_factory=list)

    def request(self, *args: str, **overrides: object) -> ExecRequest:
        values: dict[str, object] = {"args": args, "env": ("PATH=/bin",), "cwd": "/", "user": "root",
                                     "rootfs": self.rootfs}
        values.update(overrides)
        return ExecRequest(**values)  # type: ignore[arg-type]

    def run(self, *args: str, **overrides: object) -> Result:
        return asyncio.run(self.run_async(self.request(*args, **overrides)))

    async def run_async(self, req: ExecRequest, on_stdout: Callable[[bytes], None] | None = None) -> Result:
        out: list[bytes] = []
        err: list[bytes] = []

        def stdout(chunk: bytes) -> None:
            out.append(chunk)
            if on_stdout is not None:
                on_stdout(chunk)

        code = await self.executor.run(req, stdout=stdout, stderr=err.append)
        return Result(code, b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace"))


@pytest.fixture
def runner(runtime_name: str, rootfs: Path, tmp_path: Path) -> Iterator[Runner]:
    logs: list[str] = []
    executor = Executor(tmp_path / "executor", binary=runtime_name, log=logs.append)
    yield Runner(executor, rootfs, logs)
