"""Upstream buildctl's recorded requests, replayed byte for byte against pybuildkitd: the daemon
answers each with the message types, counts and status that buildkitd answered (compat
skeletons), carrying the fields buildctl reads."""
from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from pybuildkit.appliance.api.proto import control_pb2 as cpb
from tests.fixtures.transcripts import Call, load_calls, transcript_dir
from tests.integration.daemon.conftest import Daemon

pytestmark = pytest.mark.integration
ident = lambda b: b  # noqa: E731


def calls_of(shared: Path, name: str) -> list[Call]:
    path = transcript_dir(shared) / f"{name}.jsonl.gz"
    if not path.exists():
        pytest.skip(f"no transcript {path}")
    return [c for c in load_calls(path) if not c.inner and "TraceService" not in c.method]


async def replay_unary(address: str, call: Call) -> tuple[grpc.StatusCode, list[bytes]]:
    async with grpc.aio.insecure_channel(f"unix:{address.removeprefix('unix://')}") as channel:
        if call.method in ("/moby.buildkit.v1.Control/Prune",):
            stream = channel.unary_stream(call.method, request_serializer=ident, response_deserializer=ident)
            out = []
            try:
                async for item in stream(call.requests[0]):
                    out.append(item)
            except grpc.aio.AioRpcError as exc:
                return exc.code(), out
            return grpc.StatusCode.OK, out
        method = channel.unary_unary(call.method, request_serializer=ident, response_deserializer=ident)
        try:
            return grpc.StatusCode.OK, [await method(call.requests[0])]
        except grpc.aio.AioRpcError as exc:
            return exc.code(), []


@pytest.mark.parametrize("scenario", ["s1_debug_workers", "s1_debug_info", "s5a_du_verbose", "s5b_prune_keep_1h"])
def test_recorded_request_gets_the_recorded_answer_shape(daemon: Daemon, shared_dir: Path, scenario: str) -> None:
    for call in calls_of(shared_dir, scenario):
        code, responses = asyncio.run(replay_unary(daemon.address, call))
        assert code == grpc.StatusCode.OK and call.status == "0", call.method
        if call.method.endswith("/Prune"):
            assert len(responses) == len(call.responses) == 0  # fresh daemon: nothing old enough
        else:
            assert len(responses) == len(call.responses) == 1, call.method


def test_list_workers_answers_what_buildctl_prints(daemon: Daemon, shared_dir: Path) -> None:
    call = calls_of(shared_dir, "s1_debug_workers")[0]
    recorded = cpb.ListWorkersResponse.FromString(call.responses[0]).record[0]
    _, responses = asyncio.run(replay_unary(daemon.address, call))
    ours = cpb.ListWorkersResponse.FromString(responses[0]).record[0]
    assert ours.ID and ours.platforms[0].Architecture == "amd64" and ours.platforms[0].OS == "linux"
    assert set(ours.Labels) == set(recorded.Labels)
    assert len(ours.GCPolicy) == len(recorded.GCPolicy) == 4
    assert list(ours.GCPolicy[0].filters) == list(recorded.GCPolicy[0].filters)
    assert ours.GCPolicy[0].keepDuration == recorded.GCPolicy[0].keepDuration
    assert ours.GCPolicy[0].maxUsedSpace == recorded.GCPolicy[0].maxUsedSpace
    assert ours.BuildkitVersion.version and ours.BuildkitVersion.dockerfileVersion


def test_prune_with_an_unknown_id_filter_ends_cleanly(daemon: Daemon, shared_dir: Path) -> None:
    call = calls_of(shared_dir, "s5c_prune_filter_id")[0]
    code, responses = asyncio.run(replay_unary(daemon.address, call))
    assert code == grpc.StatusCode.OK and responses == []
