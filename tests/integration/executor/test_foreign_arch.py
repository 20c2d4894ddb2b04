"""Foreign-architecture steps: through the kernel's binfmt_misc handler when one is registered,
else through the QEMU emulator mounted at /dev/.buildkit_qemu_emulator."""
from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from pybuildkit.worker.executor import EmulatorPolicy, ExecRequest, Executor
from pybuildkit.binfmt.emulator import find_emulator, has_binfmt_handler, native_arch

from .conftest import FIXTURES, make_busybox_rootfs

pytestmark = pytest.mark.skipif(native_arch() != "amd64", reason="the arm64 fixture is foreign only on amd64 hosts")


@pytest.fixture(scope="module")
def arm64_rootfs(busybox_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    debs = sorted(FIXTURES.glob("busybox-static_*_arm64.deb"))
    if not debs:
        pytest.skip(f"no arm64 busybox-static package in {FIXTURES}")
    extracted = tmp_path_factory.mktemp("arm64-deb")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(extracted)], check=True)
    binary = next(p for p in (extracted / "bin" / "busybox", extracted / "usr" / "bin" / "busybox") if p.exists())
    applets = [p.name for p in (busybox_template / "bin").iterdir()]
    return make_busybox_rootfs(tmp_path_factory.mktemp("arm64") / "rootfs", binary, applets)


def run(executor: Executor, rootfs: Path, *args: str) -> tuple[int, str]:
    out: list[bytes] = []
    req = ExecRequest(args=args, env=("PATH=/bin",), cwd="/", user="root", rootfs=rootfs, platform_arch="arm64")
    code = asyncio.run(executor.run(req, stdout=out.append, stderr=out.append))
    return code, b"".join(out).decode(errors="replace")


def test_arm64_step_runs_through_the_binfmt_handler(arm64_rootfs: Path, runtime_name: str, tmp_path: Path) -> None:
    if not has_binfmt_handler("arm64"):
        pytest.skip("no binfmt_misc handler for arm64 is registered (apt-get install qemu-user-static)")
    executor = Executor(tmp_path / "executor", binary=runtime_name)
    assert run(executor, arm64_rootfs, "/bin/uname", "-m") == (0, "aarch64\n")
    code, _ = run(executor, arm64_rootfs, "/bin/busybox", "test", "-e", "/dev/.buildkit_qemu_emulator")
    assert code == 1, "no emulator is injected when the kernel has a handler"


def test_arm64_step_runs_through_the_injected_emulator(arm64_rootfs: Path, runtime_name: str, tmp_path: Path) -> None:
    if find_emulator("arm64") is None:
        pytest.skip("no qemu-aarch64-static or buildkit-qemu-aarch64 on PATH (apt-get install qemu-user-static)")
    logs: list[str] = []
    pretend_no_handler = EmulatorPolicy(handler_check=lambda _arch: False)
    executor = Executor(tmp_path / "executor", binary=runtime_name, log=logs.append, emulators=pretend_no_handler)
    assert run(executor, arm64_rootfs, "/bin/busybox", "uname", "-m") == (0, "aarch64\n")
    code, _ = run(executor, arm64_rootfs, "/bin/busybox", "test", "-x", "/dev/.buildkit_qemu_emulator")
    assert code == 0
    assert any("running arm64 steps through" in line for line in logs)
