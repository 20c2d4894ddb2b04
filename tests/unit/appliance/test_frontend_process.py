"""The daemon's Dockerfile frontend, forked per build from a warm server: it converts as it would
inline, its typed errors arrive typed, it is stopped at its time budget and capped in address
space, and the daemon's event loop runs undisturbed while it works."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pybuildkit.appliance.frontend_process import SPARE_NAME, WORKING_NAME, run_in_process
from pybuildkit.appliance.frontend_runner import FrontendBudget
from pybuildkit.frontend.dockerfile.builder import build
from pybuildkit.frontend.dockerfile.instructions import DockerfileError
from pybuildkit.solver.budget import BudgetExceededError
from pybuildkit.solver.platforms import Platform
from tests.unit.appliance.test_frontend_runner import inputs, rejected_beside_a_ticker, slow_dockerfile

GENEROUS = FrontendBudget(30.0, 512 << 20)


def _frontend_children(name: str = WORKING_NAME) -> list[int]:
    """Processes forked by this test process's fork server (same command line, parent is the
    server; a daemon of another test has its own) that are converting a build (the spare one,
    forked ahead for the next build, is named otherwise)."""
    procs = {}
    names = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                comm = (entry / "comm").read_text().strip()
            except (OSError, ValueError, IndexError):
                continue
            if b"pybuildkit.appliance.frontend_process" in cmdline:
                procs[int(entry.name)] = ppid
                names[int(entry.name)] = comm
    servers = {pid for pid, ppid in procs.items() if ppid == os.getpid()}
    return [pid for pid, ppid in procs.items() if ppid in servers and names[pid] == name]


def test_a_dockerfile_converts_as_it_does_inline() -> None:
    dockerfile = b"FROM scratch\nCOPY a /a\nENV X=1\nRUN echo $X\n"
    isolated = asyncio.run(run_in_process(inputs(dockerfile), GENEROUS))
    inline = asyncio.run(build(inputs(dockerfile)))
    assert [d.SerializeToString(deterministic=True) for d in isolated.definitions] == \
        [d.SerializeToString(deterministic=True) for d in inline.definitions]
    assert isolated.image_configs == inline.image_configs and isolated.platforms == inline.platforms


def test_a_dockerfile_error_arrives_typed_with_its_place() -> None:
    with pytest.raises(DockerfileError) as caught:
        asyncio.run(run_in_process(inputs(b"FROM scratch\nHEALTHCHECK --retries=12x CMD true\n"), GENEROUS))
    assert "--retries" in caught.value.message
    assert caught.value.start_line == 2 and "HEALTHCHECK" in (caught.value.excerpt() or "")


def test_image_lookups_run_on_the_daemon_loop_and_their_errors_are_located() -> None:
    seen: list[int] = []

    async def resolver(ref: str, platform: Platform) -> tuple[str, dict]:
        seen.append(threading.get_ident())
        await asyncio.sleep(0.6)  # a slow registry, longer than the whole budget: not charged
        if "missing" in ref:
            raise DockerfileError("not found")
        return "docker.io/library/alpine@sha256:" + "a" * 64, {"config": {}, "rootfs": {"diff_ids": []}}

    async def scenario() -> int:
        await run_in_process(inputs(b"FROM alpine\nRUN true\n", resolver), FrontendBudget(0.3, 512 << 20))
        with pytest.raises(DockerfileError, match="missing.*not found"):
            await run_in_process(inputs(b"FROM missing\n", resolver), GENEROUS)
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert seen == [loop_thread, loop_thread]


def test_work_over_the_time_budget_is_stopped_and_the_loop_never_waits_on_it() -> None:
    elapsed, gaps, error = asyncio.run(rejected_beside_a_ticker(
        run_in_process(inputs(slow_dockerfile()), FrontendBudget(1.0, 512 << 20))))
    assert error.budget == "time" and "[frontend] time-budget" in (error.hint or "")
    assert elapsed < 3.0
    assert sum(gaps) / len(gaps) < 0.01  # a 1 ms sleep stays about 1 ms: no interpreter lock shared


def test_memory_over_the_budget_is_rejected_naming_the_key() -> None:
    with pytest.raises(BudgetExceededError) as caught:
        asyncio.run(run_in_process(inputs(slow_dockerfile(3000)), FrontendBudget(30.0, 1 << 20)))
    assert caught.value.budget == "memory" and "[frontend] memory-budget" in (caught.value.hint or "")


def test_the_address_space_limit_stops_allocations_the_budget_does_not_count() -> None:
    code = ("from pybuildkit.appliance.frontend_process import INTERPRETER_SLACK, _limit_address_space\n"
            "_limit_address_space(16 << 20)\n"
            "try:\n    bytearray(INTERPRETER_SLACK + (64 << 20))\nexcept MemoryError:\n    print('capped')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "capped", proc.stderr


def test_a_cancelled_build_kills_its_frontend_process() -> None:
    async def scenario() -> list[int]:
        task = asyncio.create_task(run_in_process(inputs(slow_dockerfile()), GENEROUS))
        deadline = time.monotonic() + 10
        while not _frontend_children() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        running = _frontend_children()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return running

    assert asyncio.run(scenario()), "no frontend process was seen working"
    deadline = time.monotonic() + 5
    while _frontend_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _frontend_children() == []


def test_the_next_builds_frontend_process_is_forked_before_it_asks() -> None:
    asyncio.run(run_in_process(inputs(b"FROM scratch\nENV A=1\n"), GENEROUS))
    deadline = time.monotonic() + 10
    while not _frontend_children(SPARE_NAME) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_frontend_children(SPARE_NAME)) == 1
