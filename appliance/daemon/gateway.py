"""`moby.buildkit.v1.frontend.LLBBridge`: the frontend gateway on the daemon's own server.

Upstream buildctl sends Control.Solve with neither definition nor frontend; it runs the build
through this service instead (compat transcripts s2, s6): `Solve` with a frontend name (the daemon
runs that frontend and hands back refs to the definitions it produced, plus image metadata) or
with a definition, then `Return` with the result the client wants exported.
"""
from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Sequence

import grpc

from pybuildkit.appliance.api.proto import gateway_pb2 as gpb
from pybuildkit.appliance.build import Builder, BuildRequest
from pybuildkit.appliance.daemon import errors
from pybuildkit.appliance.daemon.grpcreg import service
from pybuildkit.appliance.daemon.jobs import BuildJob, FrontendResult, Jobs
from pybuildkit.solver.definition import load_definition
from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.platforms import Platform, parse_platform
from pybuildkit.solver.progress import WarningEvent
from pybuildkit.worker.providers import build_credentials

BUILD_ID_KEY = "buildkit-controlapi-buildid"
FRONTEND_CAPS = (
    "frontend.caps", "frontend.inputs", "gateway.evaluate", "gateway.exec", "gateway.exec.extrahosts",
    "gateway.exec.filesystem", "gateway.exec.secretenv", "gateway.exec.signals", "gateway.solve.evaluate",
    "gateway.solve.metadata", "gateway.warnings", "importcaches", "proto.refarray", "readdir", "readfile",
    "reference.attestations", "reference.output", "resolveimage", "resolveimage.resolvemode", "return",
    "solve.base", "solve.inlinereturn", "statfile",
)
#: how long a gateway call waits for its Control.Solve (buildctl sends them concurrently)
SOLVE_WAIT = 30.0


class GatewayService:
    def __init__(self, builder: Builder, jobs: Jobs, worker_record) -> None:
        self.builder = builder
        self.jobs = jobs
        self._worker_record = worker_record

    def handler(self) -> grpc.GenericRpcHandler:
        return service("moby.buildkit.v1.frontend.LLBBridge", {
            "Ping": ("unary_unary", self.Ping, gpb.PingRequest, gpb.PongResponse),
            "Solve": ("unary_unary", self.Solve, gpb.SolveRequest, gpb.SolveResponse),
            "Return": ("unary_unary", self.Return, gpb.ReturnRequest, gpb.ReturnResponse),
            "ReadFile": ("unary_unary", self.ReadFile, gpb.ReadFileRequest, gpb.ReadFileResponse),
            "ResolveImageConfig": ("unary_unary", self.ResolveImageConfig, gpb.ResolveImageConfigRequest,
                                   gpb.ResolveImageConfigResponse),
            "Inputs": ("unary_unary", self.Inputs, gpb.InputsRequest, gpb.InputsResponse),
            "Warn": ("unary_unary", self.Warn, gpb.WarnRequest, gpb.WarnResponse),
        })

    async def _job(self, context: grpc.aio.ServicerContext) -> BuildJob:
        ref = next((v for k, v in context.invocation_metadata() or () if k == BUILD_ID_KEY), "")
        if not ref:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"missing {BUILD_ID_KEY} metadata")
        job = self.jobs.get(ref)
        try:
            await asyncio.wait_for(job.solve_started.wait(), SOLVE_WAIT)
        except asyncio.TimeoutError:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"no solve with ref {ref} is running")
        return job

    async def Ping(self, request: gpb.PingRequest, context: grpc.aio.ServicerContext) -> gpb.PongResponse:
        caps = [gpb.APICap(ID=c, Enabled=True) for c in FRONTEND_CAPS]
        return gpb.PongResponse(FrontendAPICaps=caps, Workers=[await self._worker_record()])

    async def Solve(self, request: gpb.SolveRequest, context: grpc.aio.ServicerContext) -> gpb.SolveResponse:
        job = await self._job(context)
        try:
            if request.Frontend:
                result = await self._run_frontend(job, request)
            elif len(getattr(request.Definition, "def")):
                load_definition(request.Definition)  # reject a broken definition here, not at export
                ref_id = self._new_ref(job, None, request.Definition)
                result = gpb.Result(ref=gpb.Ref(id=ref_id, **{"def": request.Definition}))
            else:
                result = gpb.Result()
        except BuildError as exc:
            context.set_trailing_metadata(errors.trailing_details(exc))
            await context.abort(errors.status_code(exc), errors.message(exc))
        return gpb.SolveResponse(result=result)

    def _new_ref(self, job: BuildJob, platform: Platform | None, definition: pb.Definition) -> str:
        ref_id = secrets.token_hex(12)
        job.gateway_refs[ref_id] = (platform, definition)
        return ref_id

    async def _run_frontend(self, job: BuildJob, request: gpb.SolveRequest) -> gpb.Result:
        build_credentials.set(job.providers.credentials)  # image resolution with the client's auth
        build = BuildRequest(frontend=request.Frontend, frontend_attrs=dict(request.FrontendOpt),
                             entitlements=job.entitlements)
        build_job = self.builder.new_job(build, job.providers, job.progress, session_id=job.session_id)
        platforms, definitions, configs = await self.builder.run_frontend(build, build_job)
        result = gpb.Result()
        entries = [{"ID": str(p), "Platform": p.to_oci()} for p in platforms]
        result.metadata["refs.platforms"] = json.dumps({"Platforms": entries}).encode()
        multi = len(platforms) > 1 or "," in build.frontend_attrs.get("platform", "")
        for platform, definition, config in zip(platforms, definitions, configs):
            ref = gpb.Ref(id=self._new_ref(job, platform, definition), **{"def": definition})
            if multi:
                result.refs.refs[str(platform)].CopyFrom(ref)
                key = f"containerimage.config/{platform}"
            else:
                result.ref.CopyFrom(ref)
                key = "containerimage.config"
            if config is not None:
                result.metadata[key] = json.dumps(config).encode()
        return result

    async def Return(self, request: gpb.ReturnRequest, context: grpc.aio.ServicerContext) -> gpb.ReturnResponse:
        job = await self._job(context)
        if job.done.is_set():
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"build {job.ref} has already ended")
        if job.returned.done():
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the build already returned a result")
        if request.HasField("error") and request.error.code:
            job.returned.set_exception(BuildError(request.error.message or "the frontend failed"))
        else:
            try:
                job.returned.set_result(self._returned(job, request.result))
            except BuildError as exc:
                job.returned.set_exception(exc)
        return gpb.ReturnResponse()

    def _returned(self, job: BuildJob, result: gpb.Result) -> FrontendResult:
        meta = dict(result.metadata)
        declared: list[Platform] = []
        if "refs.platforms" in meta:
            try:
                entries = json.loads(meta["refs.platforms"]).get("Platforms") or []
                declared = [parse_platform(e["ID"]) for e in entries]
            except (ValueError, KeyError, TypeError) as exc:
                raise BuildError(f"invalid refs.platforms metadata from the frontend: {exc}") from exc
        out = FrontendResult([], [], [])

        def add(key: str, ref: gpb.Ref, platform: Platform | None, config_key: str) -> None:
            definition = getattr(ref, "def") if len(getattr(getattr(ref, "def"), "def")) else None
            known = job.gateway_refs.get(ref.id)
            if definition is None and known is not None:
                definition = known[1]
            if definition is None:
                raise BuildError(f"the frontend returned ref {ref.id or key!r}, which this build does not know")
            platform = platform or (known[0] if known else None) or self.builder.worker.platform
            raw = meta.get(config_key)
            out.platforms.append(platform)
            out.definitions.append(definition)
            out.image_configs.append(json.loads(raw) if raw else None)

        kind = result.WhichOneof("result")
        if kind == "ref":
            add("", result.ref, declared[0] if len(declared) == 1 else None, "containerimage.config")
        elif kind == "refs":
            for key, ref in sorted(result.refs.refs.items(), key=lambda kv: _order(kv[0], declared)):
                add(key, ref, parse_platform(key), f"containerimage.config/{key}")
        elif kind is not None:
            raise BuildError("the frontend returned a result in a deprecated form this daemon does not take",
                             hint="use a client that sets allowResultArrayRef (buildctl >= 0.5)")
        return out

    async def ReadFile(self, request: gpb.ReadFileRequest, context: grpc.aio.ServicerContext) -> gpb.ReadFileResponse:
        job = await self._job(context)
        known = job.gateway_refs.get(request.Ref)
        if known is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no ref {request.Ref!r} in this build")
        build_job = self.builder.new_job(BuildRequest(), job.providers, job.progress, session_id=job.session_id)
        solved = await self.builder.solver.solve(load_definition(known[1]), build_job)
        try:
            data = await asyncio.to_thread(self._read, solved.result, request)
        except OSError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{request.FilePath}: {exc.strerror}")
        return gpb.ReadFileResponse(Data=data)

    def _read(self, snapshot, request: gpb.ReadFileRequest) -> bytes:
        from pybuildkit.worker.layer.paths import resolve_in_root

        with self.builder.worker.snapshots.view(snapshot) as root:
            path = resolve_in_root(root, request.FilePath)
            with open(path, "rb") as handle:
                if request.HasField("Range"):
                    handle.seek(request.Range.Offset)
                    return handle.read(request.Range.Length or -1)
                return handle.read()

    async def ResolveImageConfig(self, request: gpb.ResolveImageConfigRequest,
                                 context: grpc.aio.ServicerContext) -> gpb.ResolveImageConfigResponse:
        platform = Platform.from_pb(request.Platform) if request.HasField("Platform") else self.builder.worker.platform
        try:
            resolved = await self.builder.worker.resolve_image(request.Ref, platform)
        except BuildError as exc:
            await context.abort(errors.status_code(exc), errors.message(exc))
        return gpb.ResolveImageConfigResponse(Digest=resolved.root_digest, Config=json.dumps(resolved.config).encode())

    async def Inputs(self, request: gpb.InputsRequest, context: grpc.aio.ServicerContext) -> gpb.InputsResponse:
        return gpb.InputsResponse()

    async def Warn(self, request: gpb.WarnRequest, context: grpc.aio.ServicerContext) -> gpb.WarnResponse:
        job = await self._job(context)
        job.progress.warning(WarningEvent(request.digest, int(request.level), request.short,
                                          list(request.detail), request.url))
        return gpb.WarnResponse()


def _order(key: str, declared: Sequence[Platform]) -> int:
    names = [str(p) for p in declared]
    return names.index(key) if key in names else len(names)
