"""Builds driven the way upstream buildctl drives buildkitd (compat transcripts s2, s6):
Control.Solve carries neither definition nor frontend; the client runs the frontend through
LLBBridge (Ping, Solve, Return) and the daemon exports what Return hands back."""
from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from pybuildkit.appliance.api.proto import control_pb2 as cpb
from pybuildkit.appliance.api.proto import gateway_pb2 as gpb
from pybuildkit.appliance.client.solve import new_ref
from pybuildkit.appliance.session.client import ClientSession, OutputTarget
from pybuildkit.solver.llb import builder as llb
from tests.integration.daemon.conftest import Daemon

pytestmark = pytest.mark.integration
BRIDGE = "/moby.buildkit.v1.frontend.LLBBridge/"


def unary(channel: grpc.aio.Channel, path: str, req, resp):
    return channel.unary_unary(path, request_serializer=req.SerializeToString, response_deserializer=resp.FromString)


async def gateway_build(address: str, definition, *, dest: Path, frontend: str = "", opts=None,
                        fail_with: str = "") -> tuple[cpb.SolveResponse | None, gpb.SolveResponse, grpc.StatusCode]:
    ref = new_ref()
    meta = (("buildkit-controlapi-buildid", ref),)
    async with grpc.aio.insecure_channel(f"unix:{address.removeprefix('unix://')}") as ch:
        session = ClientSession(outputs=[OutputTarget("dir", str(dest))])
        serving = asyncio.ensure_future(session.run(ch))
        solve_req = cpb.SolveRequest(Ref=ref, Session=session.session_id, Exporters=[cpb.Exporter(Type="local")])
        solve_req.Cache.SetInParent()
        control_solve = asyncio.ensure_future(unary(ch, "/moby.buildkit.v1.Control/Solve", cpb.SolveRequest,
                                                    cpb.SolveResponse)(solve_req))
        pong = await unary(ch, BRIDGE + "Ping", gpb.PingRequest, gpb.PongResponse)(gpb.PingRequest(), metadata=meta)
        assert "proto.refarray" in {c.ID for c in pong.FrontendAPICaps}
        req = gpb.SolveRequest(Frontend=frontend, FrontendOpt=opts or {}, allowResultReturn=True,
                               allowResultArrayRef=True)
        if definition is not None:
            req.Definition.CopyFrom(definition)
        solved = await unary(ch, BRIDGE + "Solve", gpb.SolveRequest, gpb.SolveResponse)(req, metadata=meta)
        ret = gpb.ReturnRequest()
        if fail_with:
            ret.error.code = 2
            ret.error.message = fail_with
        else:
            ret.result.CopyFrom(solved.result)
        await unary(ch, BRIDGE + "Return", gpb.ReturnRequest, gpb.ReturnResponse)(ret, metadata=meta)
        try:
            return await control_solve, solved, grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            return None, solved, exc.code()
        finally:
            await session.close()
            await serving


def test_an_llb_definition_through_the_gateway_is_exported(daemon: Daemon, base_image: str, tmp_path: Path) -> None:
    state = llb.image(base_image).run(["/bin/sh", "-c", "echo via-gateway > /out/g.txt"],
                                      mounts=[llb.Mount("/out", llb.scratch())]).get_mount("/out")
    response, solved, code = asyncio.run(gateway_build(daemon.address, state.marshal(), dest=tmp_path / "out"))
    assert code == grpc.StatusCode.OK, daemon.log()[-3000:]
    assert solved.result.WhichOneof("result") == "ref" and solved.result.ref.id
    assert (tmp_path / "out" / "g.txt").read_text() == "via-gateway\n"


def test_a_frontend_error_returned_by_the_client_fails_the_solve(daemon: Daemon, base_image: str,
                                                                 tmp_path: Path) -> None:
    state = llb.image(base_image)
    _, _, code = asyncio.run(gateway_build(daemon.address, state.marshal(), dest=tmp_path / "x",
                                           fail_with="frontend says no"))
    assert code == grpc.StatusCode.UNKNOWN


def test_a_dockerfile_build_without_a_session_fails_on_the_gateway_call(daemon: Daemon, base_image: str, tmp_path: Path) -> None:
    """The gateway runs dockerfile.v0 in the daemon; reading the Dockerfile needs the client's
    session, so without one the frontend's error comes back on the gateway call."""
    async def run() -> grpc.StatusCode:
        ref = new_ref()
        meta = (("buildkit-controlapi-buildid", ref),)
        async with grpc.aio.insecure_channel(f"unix:{daemon.address.removeprefix('unix://')}") as ch:
            solve_req = cpb.SolveRequest(Ref=ref)
            control_solve = asyncio.ensure_future(unary(ch, "/moby.buildkit.v1.Control/Solve", cpb.SolveRequest,
                                                        cpb.SolveResponse)(solve_req))
            try:
                await unary(ch, BRIDGE + "Solve", gpb.SolveRequest, gpb.SolveResponse)(
                    gpb.SolveRequest(Frontend="dockerfile.v0", allowResultArrayRef=True), metadata=meta)
            except grpc.aio.AioRpcError as exc:
                await unary(ch, BRIDGE + "Return", gpb.ReturnRequest, gpb.ReturnResponse)(
                    gpb.ReturnRequest(error={"code": 2, "message": exc.details()}), metadata=meta)
                with pytest.raises(grpc.aio.AioRpcError):
                    await control_solve
                return exc.code()
        return grpc.StatusCode.OK

    assert asyncio.run(run()) != grpc.StatusCode.OK
