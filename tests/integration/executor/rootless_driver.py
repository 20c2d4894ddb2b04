"""Runs one step with the Executor and prints a JSON report; test_rootless starts it as an
unprivileged user inside rootlesskit, so it exercises the mapped-root code path for real.

Usage: rootless_driver.py STATE_DIR ROOTFS RUNTIME NETWORK USER ARG...
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from pybuildkit.worker.executor import ExecRequest, Executor, NetMode, in_user_namespace


async def main(argv: list[str]) -> dict[str, object]:
    state, rootfs, runtime, network, user, *args = argv
    logs: list[str] = []
    executor = Executor(Path(state), binary=runtime, log=logs.append)
    info = await executor.probe()
    out: list[bytes] = []
    err: list[bytes] = []
    request = ExecRequest(args=tuple(args), env=("PATH=/bin",), cwd="/", user=user, rootfs=Path(rootfs),
                          network=NetMode(network))
    code = await executor.run(request, stdout=out.append, stderr=err.append)
    return {"code": code, "stdout": b"".join(out).decode(errors="replace"),
            "stderr": b"".join(err).decode(errors="replace"), "runtime": info.name, "rootless": info.rootless,
            "in_user_namespace": in_user_namespace(), "logs": logs,
            "leftovers": sorted(p.name for p in (Path(state) / "runtime").iterdir())}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))))
