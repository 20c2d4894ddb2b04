"""Steps running at once on the same root filesystem: every one gets its mounts and its output.

Concurrent steps share one rootfs when a build runs the same vertex for several solves, and in
these tests; the runtime creates missing mount points there as stubs, and one step must not
remove a stub another step's runtime is about to mount onto (the race that lost a step's
stdout with crun: "mount ... to etc/resolv.conf: No such file or directory")."""
from __future__ import annotations

import asyncio
from pathlib import Path

from pybuildkit.worker.executor import Mount
from pybuildkit.worker.executor.mounts import StubLedger

from .conftest import Result, Runner

RUNS = 200
AT_ONCE = 16


def test_two_hundred_concurrent_steps_all_get_their_output(runner: Runner, rootfs: Path) -> None:
    # mount points under a missing /mnt widen the window the old code lost (5% of runs failed)
    mounts = tuple(Mount(dest=f"/mnt/m{i}", kind="tmpfs") for i in range(4))
    req = runner.request("/bin/hostname", mounts=mounts)

    async def scenario() -> list[Result]:
        gate = asyncio.Semaphore(AT_ONCE)

        async def one() -> Result:
            async with gate:
                return await runner.run_async(req)

        return await asyncio.gather(*(one() for _ in range(RUNS)))

    failed = [r for r in asyncio.run(scenario()) if (r.code, r.stdout) != (0, "buildkitsandbox\n")]
    assert failed == []
    assert not (rootfs / "mnt").exists()
    assert not (rootfs / "etc" / "hosts").exists()
    assert not (rootfs / "etc" / "resolv.conf").exists()


def test_a_stub_stays_until_its_last_user_is_done(tmp_path: Path) -> None:
    ledger = StubLedger()
    (tmp_path / "etc").mkdir()
    first = ledger.claim(tmp_path, ["/etc/hosts"])
    (tmp_path / "etc" / "hosts").touch()  # what the first step's runtime does
    second = ledger.claim(tmp_path, ["/etc/hosts"])
    assert second.paths == [tmp_path / "etc" / "hosts"]

    first.remove()
    assert (tmp_path / "etc" / "hosts").exists()
    second.remove()
    assert not (tmp_path / "etc" / "hosts").exists()
