"""Upstream buildctl's recorded builds replayed against pybuildkitd: the client's requests as
recorded (same ref, same session id, same definition), a session serving the recorded context,
and the daemon's side compared with the recorded skeleton (methods, status, message types)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from pybuildkit.appliance.api.proto import control_pb2 as cpb
from pybuildkit.appliance.api.proto import gateway_pb2 as gpb
from pybuildkit.appliance.session.client import ClientSession
from tests.fixtures.transcripts import outer, recorded, replay
from tests.integration.daemon.conftest import Daemon

pytestmark = pytest.mark.integration


def test_s6_llb_on_stdin_replays(mirrored_daemon: Daemon, shared_dir: Path) -> None:
    calls = outer(recorded(shared_dir, "s6_llb_stdin"))
    out = asyncio.run(replay(mirrored_daemon.socket_path, calls, ClientSession()))
    assert out.code == grpc.StatusCode.OK, mirrored_daemon.log()[-3000:]
    assert isinstance(out.solve, cpb.SolveResponse) and not out.solve.ExporterResponse
    result = out.gateway_result
    assert result is not None
    assert result.WhichOneof("result") == "ref"
    recorded_def = gpb.SolveRequest.FromString(calls["moby.buildkit.v1.frontend.LLBBridge/Solve"].requests[0]).Definition
    assert list(getattr(getattr(result.ref, "def"), "def")) == list(getattr(recorded_def, "def"))
    # the same vertices, by digest and name, as buildkitd reported them
    assert vertex_names(out.statuses) == vertex_names(
        cpb.StatusResponse.FromString(m) for m in calls["moby.buildkit.v1.Control/Status"].responses)
    assert all(v.completed.seconds for s in out.statuses for v in s.vertexes if v.name.startswith("bars branch")
               and v.HasField("completed"))


def vertex_names(statuses) -> dict[str, str]:
    return {v.digest: v.name for s in statuses for v in s.vertexes}


def test_s7_failing_run_replays_with_buildkits_error(mirrored_daemon: Daemon, shared_dir: Path) -> None:
    calls = outer(recorded(shared_dir, "s7_failing_run"))
    ctx = shared_dir / "compat" / "contexts" / "ctx7"
    out = asyncio.run(replay(mirrored_daemon.socket_path, calls, ClientSession(dirs={"context": ctx, "dockerfile": ctx})))
    solve_call = calls["moby.buildkit.v1.Control/Solve"]
    assert solve_call.status == "2"
    assert out.code == grpc.StatusCode.UNKNOWN
    assert out.details == solve_call.message
    result = out.gateway_result
    assert result is not None
    assert result.WhichOneof("result") == "ref"
    assert {"containerimage.config", "refs.platforms"} <= set(result.metadata)
    logs = b"".join(log.msg for s in out.statuses for log in s.logs)
    assert b"about-to-fail" in logs
