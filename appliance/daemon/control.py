"""`moby.buildkit.v1.Control`: the daemon's API, as upstream buildkitd serves it."""
from __future__ import annotations

import asyncio
import datetime
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from pybuildkit.appliance.api.proto import control_pb2 as cpb
from pybuildkit.appliance.api.proto import worker_pb2 as wpb
from pybuildkit.appliance.build import CLIENT_SIDE_EXPORTERS, Builder, BuildRequest, Output
from pybuildkit.appliance.daemon import errors
from pybuildkit.appliance.daemon.grpcreg import service
from pybuildkit.appliance.daemon.jobs import BuildJob, Jobs
from pybuildkit.appliance.daemon.statusconv import timestamp, to_status_response
from pybuildkit.appliance.daemon.usage import Policy, Usage, UsageInfo, parse_filters
from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.platforms import parse_platform
from pybuildkit.worker.providers import build_credentials

FILESEND = "/moby.filesync.v1.FileSend/DiffCopy"

log = logging.getLogger("pybuildkitd")

VERSION = wpb.BuildkitVersion(package="github.com/pybuildkit/pybuildkit", version="v0.2.0",
                              revision="pybuildkit", dockerfileVersion="1.26.0")
NANOS = 1_000_000_000


async def _remove_build_copies(job: BuildJob) -> None:
    """What the build copied from the client (its --oci-layout stores) goes when the build does."""
    if job.providers.oci_stores is not None:
        await asyncio.to_thread(job.providers.oci_stores.close)


class ControlService:
    def __init__(self, builder: Builder, jobs: Jobs, *, sessions: Any = None, worker_id: str = "",
                 platforms: Callable[[], Awaitable[Sequence[str]]] | None = None, gc_policies: Sequence[Policy] = (),
                 after_build: Callable[[], None] | None = None) -> None:
        self.builder = builder
        self.jobs = jobs
        self.sessions = sessions
        self.usage = Usage(builder.worker)
        self.worker_id = worker_id
        self._platforms = platforms or self._own_platform
        self.gc_policies = list(gc_policies)
        self._after_build = after_build

    def handler(self) -> grpc.GenericRpcHandler:
        return service("moby.buildkit.v1.Control", {
            "Solve": ("unary_unary", self.Solve, cpb.SolveRequest, cpb.SolveResponse),
            "Status": ("unary_stream", self.Status, cpb.StatusRequest, cpb.StatusResponse),
            "Session": ("stream_stream", self.Session, cpb.BytesMessage, cpb.BytesMessage),
            "DiskUsage": ("unary_unary", self.DiskUsage, cpb.DiskUsageRequest, cpb.DiskUsageResponse),
            "Prune": ("unary_stream", self.Prune, cpb.PruneRequest, cpb.UsageRecord),
            "ListWorkers": ("unary_unary", self.ListWorkers, cpb.ListWorkersRequest, cpb.ListWorkersResponse),
            "Info": ("unary_unary", self.Info, cpb.InfoRequest, cpb.InfoResponse),
            "ListenBuildHistory": ("unary_stream", self.ListenBuildHistory, cpb.BuildHistoryRequest,
                                   cpb.BuildHistoryEvent),
            "UpdateBuildHistory": ("unary_unary", self.UpdateBuildHistory, cpb.UpdateBuildHistoryRequest,
                                   cpb.UpdateBuildHistoryResponse),
        })

    # -- builds ---------------------------------------------------------------------------

    async def Solve(self, request: cpb.SolveRequest, context: grpc.aio.ServicerContext) -> cpb.SolveResponse:
        if not request.Ref:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "solve request without a ref")
        job = self.jobs.get(request.Ref)
        try:
            response = await self._solve(job, request)
        except BuildError as exc:
            log.info("build %s failed: %s", request.Ref, exc.message)
            context.set_trailing_metadata(errors.trailing_details(exc))
            await context.abort(errors.status_code(exc), errors.message(exc))
        except asyncio.CancelledError:
            log.info("build %s cancelled by the client", request.Ref)
            raise
        except Exception as exc:  # a bug: report it, keep serving
            log.exception("build %s: internal error", request.Ref)
            await context.abort(grpc.StatusCode.INTERNAL, errors.message(exc))
        finally:
            await _remove_build_copies(job)
            self.jobs.finish(job)
            if self._after_build is not None:
                self._after_build()
        return response

    async def _solve(self, job: BuildJob, request: cpb.SolveRequest) -> cpb.SolveResponse:
        job.session_id = request.Session
        job.entitlements = tuple(request.Entitlements)
        session = None
        if request.Session and self.sessions is not None:
            session = await self.sessions.get(request.Session)
            job.providers = session.providers(scratch=self.builder.worker.run_dir)
            build_credentials.set(job.providers.credentials)
        job.session = session
        job.solve_started.set()
        outputs = [Output(e.Type, dict(e.Attrs)) for e in request.Exporters]
        if not outputs and request.ExporterDeprecated:
            outputs = [Output(request.ExporterDeprecated, dict(request.ExporterAttrsDeprecated))]
        for output in outputs:
            if output.type in CLIENT_SIDE_EXPORTERS and (session is None or not session.supports(FILESEND)):
                raise BuildError(f"--output type={output.type}: the files go to the client through its session, "
                                 "and this client offers none (FileSend)",
                                 hint="use a client that opens a session (pybuildctl, buildctl), or push an image")
        build = BuildRequest(
            definition=request.Definition if len(getattr(request.Definition, "def")) else None,
            frontend=request.Frontend, frontend_attrs=dict(request.FrontendAttrs), outputs=outputs,
            entitlements=tuple(request.Entitlements),
            no_cache="no-cache" in request.FrontendAttrs and not request.FrontendAttrs.get("no-cache"),
            cache_exports=[(e.Type, dict(e.Attrs)) for e in request.Cache.Exports],
            cache_imports=[(e.Type, dict(e.Attrs)) for e in request.Cache.Imports],
        )
        build_job = self.builder.new_job(build, job.providers, job.progress, session_id=job.session_id)
        build_job.output_session = session  # type: ignore[attr-defined]
        if build.definition is not None or build.frontend:
            if build.frontend:
                platforms, definitions, configs = await self.builder.run_frontend(build, build_job)
            else:
                platforms, definitions, configs = [self.builder.worker.platform], [build.definition], [None]
        else:
            result = await job.returned  # the client runs the frontend through the gateway
            platforms, definitions, configs = result.platforms, result.definitions, result.image_configs
        if not definitions:  # nothing to build; a check request (`method=check`) answers in the metadata
            return cpb.SolveResponse(ExporterResponse=dict(getattr(build_job, "frontend_response", {}) or {}))
        result = await self.builder.solve_and_export(build, build_job, platforms, definitions, configs)
        return cpb.SolveResponse(ExporterResponse=result.exporter_response)

    async def Status(self, request: cpb.StatusRequest,
                     context: grpc.aio.ServicerContext) -> AsyncIterator[cpb.StatusResponse]:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        await context.send_initial_metadata((("buildkit-current-timestamp", now),))
        job = self.jobs.get(request.Ref)
        queue = job.progress.subscribe()
        while True:
            status = await queue.get()
            if status is None:
                return
            yield to_status_response(status)

    async def Session(self, requests: AsyncIterator[cpb.BytesMessage],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[cpb.BytesMessage]:
        if self.sessions is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "sessions are not available in this daemon")
        metadata: dict[str, Any] = {}
        for key, value in context.invocation_metadata() or ():
            key = key.lower()
            if key in metadata:
                existing = metadata[key]
                metadata[key] = (existing if isinstance(existing, list) else [existing]) + [value]
            else:
                metadata[key] = value

        async def chunks() -> AsyncIterator[bytes]:
            async for message in requests:
                yield message.data

        async for data in self.sessions.handle(chunks(), metadata):
            yield cpb.BytesMessage(data=data)

    # -- cache ------------------------------------------------------------------------------

    def _busy_since(self) -> float | None:
        active = self.jobs.active()
        return min(j.created for j in active) if active else None

    def _record(self, info: UsageInfo) -> cpb.UsageRecord:
        record = cpb.UsageRecord(ID=info.snapshot.id, InUse=info.in_use, Size=info.size,
                                 UsageCount=1, Description=info.snapshot.description,
                                 RecordType=info.record_type, Shared=info.shared)
        record.CreatedAt.CopyFrom(timestamp(int(info.created * NANOS)))
        record.LastUsedAt.CopyFrom(timestamp(int(info.last_used * NANOS)))
        return record

    async def DiskUsage(self, request: cpb.DiskUsageRequest,
                        context: grpc.aio.ServicerContext) -> cpb.DiskUsageResponse:
        try:
            filters = parse_filters(request.filter)
        except BuildError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        infos = await asyncio.to_thread(self.usage.records, busy_since=self._busy_since())
        if request.ageLimit:
            oldest = time.time() - request.ageLimit / NANOS
            infos = [i for i in infos if i.last_used >= oldest]
        return cpb.DiskUsageResponse(record=[self._record(i) for i in infos
                                             if all(f.matches(i) for f in filters)])

    async def Prune(self, request: cpb.PruneRequest,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[cpb.UsageRecord]:
        policy = Policy(all=request.all, filters=tuple(request.filter),
                        keep_duration=request.keepDuration / NANOS, reserved_space=request.reservedSpace,
                        max_used_space=request.maxUsedSpace, min_free_space=request.minFreeSpace)
        try:
            parse_filters(policy.filters)
        except BuildError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        removed = await asyncio.to_thread(self.usage.prune, policy, busy_since=self._busy_since())
        for info in removed:
            yield self._record(info)

    # -- about the worker ---------------------------------------------------------------------

    async def _own_platform(self) -> Sequence[str]:
        return [str(self.builder.worker.platform)]

    async def worker_record(self) -> wpb.WorkerRecord:
        worker = self.builder.worker
        record = wpb.WorkerRecord(ID=self.worker_id, BuildkitVersion=VERSION, Labels={
            "org.mobyproject.buildkit.worker.executor": "oci",
            "org.mobyproject.buildkit.worker.hostname": socket.gethostname(),
            "org.mobyproject.buildkit.worker.network": "host",
            "org.mobyproject.buildkit.worker.oci.process-mode": "sandbox",
            "org.mobyproject.buildkit.worker.selinux.enabled": "false",
            "org.mobyproject.buildkit.worker.snapshotter": str(worker.snapshots.driver),
        })
        for text in await self._platforms():
            p = parse_platform(text)
            record.platforms.append(pb.Platform(Architecture=p.architecture, OS=p.os, Variant=p.variant or ""))
        for policy in self.gc_policies:
            record.GCPolicy.append(wpb.GCPolicy(
                all=policy.all, keepDuration=int(policy.keep_duration * NANOS), filters=list(policy.filters),
                reservedSpace=policy.reserved_space, maxUsedSpace=policy.max_used_space,
                minFreeSpace=policy.min_free_space))
        return record

    async def ListWorkers(self, request: cpb.ListWorkersRequest,
                          context: grpc.aio.ServicerContext) -> cpb.ListWorkersResponse:
        return cpb.ListWorkersResponse(record=[await self.worker_record()])

    async def Info(self, request: cpb.InfoRequest, context: grpc.aio.ServicerContext) -> cpb.InfoResponse:
        return cpb.InfoResponse(buildkitVersion=VERSION)

    async def ListenBuildHistory(self, request: cpb.BuildHistoryRequest,
                                 context: grpc.aio.ServicerContext) -> AsyncIterator[cpb.BuildHistoryEvent]:
        """Running builds only (we keep no finished history yet), enough for buildx's listing."""
        for job in self.jobs.active():
            if request.Ref and job.ref != request.Ref:
                continue
            record = cpb.BuildHistoryRecord(Ref=job.ref)
            record.CreatedAt.CopyFrom(timestamp(int(job.created * NANOS)))
            yield cpb.BuildHistoryEvent(type=cpb.STARTED, record=record)

    async def UpdateBuildHistory(self, request: cpb.UpdateBuildHistoryRequest,
                                 context: grpc.aio.ServicerContext) -> cpb.UpdateBuildHistoryResponse:
        return cpb.UpdateBuildHistoryResponse()
