"""A client of `moby.buildkit.v1.Control`, hand-wired (no grpc code generator on Debian)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc

from pybuildkit.appliance.api.proto import control_pb2 as cpb

SERVICE = "/moby.buildkit.v1.Control/"


class ControlClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel

        def unary(name: str, req, resp):
            return channel.unary_unary(SERVICE + name, request_serializer=req.SerializeToString,
                                       response_deserializer=resp.FromString)

        def stream(name: str, req, resp):
            return channel.unary_stream(SERVICE + name, request_serializer=req.SerializeToString,
                                        response_deserializer=resp.FromString)

        self._solve = unary("Solve", cpb.SolveRequest, cpb.SolveResponse)
        self._status = stream("Status", cpb.StatusRequest, cpb.StatusResponse)
        self._du = unary("DiskUsage", cpb.DiskUsageRequest, cpb.DiskUsageResponse)
        self._prune = stream("Prune", cpb.PruneRequest, cpb.UsageRecord)
        self._workers = unary("ListWorkers", cpb.ListWorkersRequest, cpb.ListWorkersResponse)
        self._info = unary("Info", cpb.InfoRequest, cpb.InfoResponse)

    def solve(self, request: cpb.SolveRequest, *, timeout: float | None = None):
        """The call object: await it for the response, read `trailing_metadata()` on failure."""
        return self._solve(request, timeout=timeout)

    def status(self, ref: str) -> AsyncIterator[cpb.StatusResponse]:
        return self._status(cpb.StatusRequest(Ref=ref))

    async def disk_usage(self, filters: Sequence[str] = (), *, timeout: float | None = None) -> cpb.DiskUsageResponse:
        return await self._du(cpb.DiskUsageRequest(filter=list(filters)), timeout=timeout)

    def prune(self, request: cpb.PruneRequest) -> AsyncIterator[cpb.UsageRecord]:
        return self._prune(request)

    async def list_workers(self, *, timeout: float | None = None, wait_for_ready: bool = False) -> cpb.ListWorkersResponse:
        return await self._workers(cpb.ListWorkersRequest(), timeout=timeout, wait_for_ready=wait_for_ready)

    async def info(self, *, timeout: float | None = None) -> cpb.InfoResponse:
        return await self._info(cpb.InfoRequest(), timeout=timeout)
