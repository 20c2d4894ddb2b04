"""Upstream buildctl's recorded builds replayed against pybuildkitd: the client's requests as
recorded (same ref, same session id, same definition), a session serving the recorded context,
and the daemon's side compared with the recorded skeleton (methods, status, message types)."""
from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import grpc
import pytest

from pybuildkit.appliance.api.proto import control_pb2 as cpb
from pybuildkit.appliance.api.proto import gateway_pb2 as gpb
from pybuildkit.appliance.session.client import ClientSession
from tests.fixtures.transcripts import Call, load_calls, transcript_dir
from tests.integration.daemon.conftest import Daemon, start_daemon

pytestmark = pytest.mark.integration
RECORDED_REGISTRY = "127.0.0.1:5000"


@pytest.fixture
def mirrored_daemon(registry_host: str, tmp_path_factory: pytest.TempPathFactory):
    """A daemon that pulls the recordings' 127.0.0.1:5000/busybox from the test registry."""
    config = tmp_path_factory.mktemp("cfg") / "pybuildkitd.toml"
    subprocess.run(["skopeo", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{registry_host}/library/busybox:latest", f"docker://{registry_host}/busybox:latest"],
                   check=True, capture_output=True, timeout=120)
    config.write_text(f'[registry."{RECORDED_REGISTRY}"]\nmirrors = ["{registry_host}"]\nhttp = true\n\n'
                      f'[registry."{registry_host}"]\nhttp = true\n')
    d = start_daemon(tmp_path_factory.mktemp("root"), config, tmp_path_factory.mktemp("run"))
    try:
        yield d
    finally:
        d.stop()


def recorded(shared: Path, name: str) -> dict[str, Call]:
    path = transcript_dir(shared) / f"{name}.jsonl.gz"
    if not path.exists():
        pytest.skip(f"no transcript {path}")
    return {c.method.rsplit("/", 2)[-2] + "/" + c.method.rsplit("/", 1)[-1]: c
            for c in load_calls(path) if not c.inner}


async def replay(daemon: Daemon, calls: dict[str, Call], dirs: dict[str, Path]) -> dict[str, object]:
    solve_call = calls["moby.buildkit.v1.Control/Solve"]
    request = cpb.SolveRequest.FromString(solve_call.requests[0])
    build_id = (("buildkit-controlapi-buildid", request.Ref),)
    out: dict[str, object] = {}
    async with grpc.aio.insecure_channel(f"unix:{daemon.socket_path}") as ch:
        def unary(path: str, req, resp):
            return ch.unary_unary(path, request_serializer=req.SerializeToString, response_deserializer=resp.FromString)

        await unary("/moby.buildkit.v1.Control/ListWorkers", cpb.ListWorkersRequest, cpb.ListWorkersResponse)(
            cpb.ListWorkersRequest.FromString(calls["moby.buildkit.v1.Control/ListWorkers"].requests[0]))
        session = ClientSession(dirs=dirs, session_id=request.Session)
        serving = asyncio.ensure_future(session.run(ch))
        solve = asyncio.ensure_future(unary("/moby.buildkit.v1.Control/Solve", cpb.SolveRequest,
                                            cpb.SolveResponse)(request))
        statuses: list[cpb.StatusResponse] = []

        async def follow() -> None:
            stream = ch.unary_stream("/moby.buildkit.v1.Control/Status",
                                     request_serializer=cpb.StatusRequest.SerializeToString,
                                     response_deserializer=cpb.StatusResponse.FromString)
            async for message in stream(cpb.StatusRequest(Ref=request.Ref)):
                statuses.append(message)

        status = asyncio.ensure_future(follow())
        bridge = "/moby.buildkit.v1.frontend.LLBBridge/"
        out["pong"] = await unary(bridge + "Ping", gpb.PingRequest, gpb.PongResponse)(gpb.PingRequest(),
                                                                                      metadata=build_id)
        gw_request = gpb.SolveRequest.FromString(calls["moby.buildkit.v1.frontend.LLBBridge/Solve"].requests[0])
        solved = await unary(bridge + "Solve", gpb.SolveRequest, gpb.SolveResponse)(gw_request, metadata=build_id)
        out["gateway_result"] = solved.result
        await unary(bridge + "Return", gpb.ReturnRequest, gpb.ReturnResponse)(
            gpb.ReturnRequest(result=solved.result), metadata=build_id)
        try:
            out["solve"] = await solve
            out["code"] = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            out["code"], out["details"] = exc.code(), exc.details()
        await status
        out["statuses"] = statuses
        await session.close()
        await serving
    return out


def test_s6_llb_on_stdin_replays(mirrored_daemon: Daemon, shared_dir: Path) -> None:
    calls = recorded(shared_dir, "s6_llb_stdin")
    out = asyncio.run(replay(mirrored_daemon, calls, {}))
    assert out["code"] == grpc.StatusCode.OK, mirrored_daemon.log()[-3000:]
    assert isinstance(out["solve"], cpb.SolveResponse) and not out["solve"].ExporterResponse
    result = out["gateway_result"]
    assert result.WhichOneof("result") == "ref"
    recorded_def = gpb.SolveRequest.FromString(calls["moby.buildkit.v1.frontend.LLBBridge/Solve"].requests[0]).Definition
    assert list(getattr(getattr(result.ref, "def"), "def")) == list(getattr(recorded_def, "def"))
    # the same vertices, by digest and name, as buildkitd reported them
    assert vertex_names(out["statuses"]) == vertex_names(
        cpb.StatusResponse.FromString(m) for m in calls["moby.buildkit.v1.Control/Status"].responses)
    assert all(v.completed.seconds for s in out["statuses"] for v in s.vertexes if v.name.startswith("bars branch")
               and v.HasField("completed"))


def vertex_names(statuses) -> dict[str, str]:
    return {v.digest: v.name for s in statuses for v in s.vertexes}


def test_s7_failing_run_replays_with_buildkits_error(mirrored_daemon: Daemon, shared_dir: Path) -> None:
    calls = recorded(shared_dir, "s7_failing_run")
    ctx = shared_dir / "compat" / "contexts" / "ctx7"
    out = asyncio.run(replay(mirrored_daemon, calls, {"context": ctx, "dockerfile": ctx}))
    solve_call = calls["moby.buildkit.v1.Control/Solve"]
    assert solve_call.status == "2"
    assert out["code"] == grpc.StatusCode.UNKNOWN
    assert out["details"] == solve_call.message
    result = out["gateway_result"]
    assert result.WhichOneof("result") == "ref"
    assert {"containerimage.config", "refs.platforms"} <= set(result.metadata)
    logs = b"".join(log.msg for s in out["statuses"] for log in s.logs)
    assert b"about-to-fail" in logs
