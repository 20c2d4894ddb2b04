"""Our own .proto files read every message real buildctl and buildkitd exchanged (compat
transcripts) completely: nothing decodes as an unknown field, so the field numbers are right."""
from __future__ import annotations

from pathlib import Path

import pytest

from pybuildkit.appliance.api.proto import control_pb2 as cpb
from pybuildkit.appliance.api.proto import gateway_pb2 as gpb
from tests.fixtures.transcripts import all_transcripts, transcript_dir

# method -> (request type, response type)
TYPES = {
    "/moby.buildkit.v1.Control/Solve": (cpb.SolveRequest, cpb.SolveResponse),
    "/moby.buildkit.v1.Control/Status": (cpb.StatusRequest, cpb.StatusResponse),
    "/moby.buildkit.v1.Control/DiskUsage": (cpb.DiskUsageRequest, cpb.DiskUsageResponse),
    "/moby.buildkit.v1.Control/Prune": (cpb.PruneRequest, cpb.UsageRecord),
    "/moby.buildkit.v1.Control/ListWorkers": (cpb.ListWorkersRequest, cpb.ListWorkersResponse),
    "/moby.buildkit.v1.Control/Info": (cpb.InfoRequest, cpb.InfoResponse),
    "/moby.buildkit.v1.Control/Session": (cpb.BytesMessage, cpb.BytesMessage),
    "/moby.buildkit.v1.frontend.LLBBridge/Ping": (gpb.PingRequest, gpb.PongResponse),
    "/moby.buildkit.v1.frontend.LLBBridge/Solve": (gpb.SolveRequest, gpb.SolveResponse),
    "/moby.buildkit.v1.frontend.LLBBridge/Return": (gpb.ReturnRequest, gpb.ReturnResponse),
}


@pytest.fixture(scope="module")
def transcripts(shared_dir: Path):
    if not transcript_dir(shared_dir).is_dir():
        pytest.skip(f"no compat transcripts at {transcript_dir(shared_dir)}")
    return list(all_transcripts(shared_dir))


def fully_known(kind, data: bytes) -> bool:
    msg = kind.FromString(data)
    msg.DiscardUnknownFields()
    return len(msg.SerializeToString()) == len(data)


def test_every_control_and_gateway_message_decodes_without_unknown_fields(transcripts) -> None:
    checked = 0
    problems = []
    for name, calls in transcripts:
        for call in calls:
            if call.inner or call.method not in TYPES:
                continue
            req_type, resp_type = TYPES[call.method]
            for data in call.requests:
                checked += 1
                if not fully_known(req_type, data):
                    problems.append(f"{name} {call.method} request")
            for data in call.responses:
                checked += 1
                if not fully_known(resp_type, data):
                    problems.append(f"{name} {call.method} response")
    assert not problems, problems
    assert checked > 150


def test_the_gateway_result_of_a_dockerfile_build_carries_a_ref_and_image_metadata(transcripts) -> None:
    calls = dict(transcripts)["s2_dockerfile_local"]
    solve = next(c for c in calls if c.method.endswith("LLBBridge/Solve"))
    request = gpb.SolveRequest.FromString(solve.requests[0])
    assert request.Frontend == "dockerfile.v0" and request.allowResultReturn and request.allowResultArrayRef
    result = gpb.SolveResponse.FromString(solve.responses[0]).result
    assert result.WhichOneof("result") == "ref"
    assert len(getattr(getattr(result.ref, "def"), "def")) > 1
    assert {"containerimage.config", "refs.platforms"} <= set(result.metadata)
