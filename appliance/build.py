"""One build, end to end, inside this process: frontend, solve, export.

The daemon's Solve handler will call the same `run_build` with session-backed providers.
"""
from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pybuildkit.appliance.config import FrontendConfig
from pybuildkit.appliance.epoch import epoch_from_attrs
from pybuildkit.appliance.frontend_runner import FrontendBudget, run_budgeted
from pybuildkit.appliance.outputs import (
    CHECK_RESULT_STATUS,
    CHECK_RESULT_TEXT,
    CLIENT_SIDE_EXPORTERS,
    IMAGE_EXPORTERS,
    Output,
    validate_output,
)
from pybuildkit.solver.definition import load_definition
from pybuildkit.solver.errors import BuildError, EntitlementError, SolveError
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.platforms import Platform, host_platform
from pybuildkit.solver.progress import ProgressWriter, VertexEvent, WarningEvent, now_ns
from pybuildkit.solver.scheduler import Job, Solver
from pybuildkit.worker.providers import Providers
from pybuildkit.worker.snapshot.store import Snapshot
from pybuildkit.worker.worker import Worker

#: the export step's vertex name, as BuildKit's exporters call it ("exporting to client directory")
EXPORT_NAMES = {"local": "client directory", "tar": "client tarball", "oci": "oci image format",
                "docker": "docker image format"}


@dataclass
class BuildRequest:
    definition: pb.Definition | None = None
    frontend: str = ""
    frontend_attrs: Mapping[str, str] = field(default_factory=dict)
    local_dirs: Mapping[str, Path] = field(default_factory=dict)
    outputs: Sequence[Output] = ()
    entitlements: Sequence[str] = ()
    no_cache: bool = False
    cache_exports: Sequence[tuple[str, Mapping[str, str]]] = ()  # (type, attrs), as --export-cache
    cache_imports: Sequence[tuple[str, Mapping[str, str]]] = ()


@dataclass
class BuildResult:
    exporter_response: dict[str, str]
    results: list[tuple[Platform, Snapshot | None]]


class Builder:
    """A worker plus a solver: what a daemon keeps for its lifetime, and daemonless for one build."""

    def __init__(self, worker: Worker, *, max_parallelism: int,
                 image_defaults: Mapping[str, str] | None = None, max_expansion: int | None = None,
                 frontend_budget: FrontendBudget | None = None, isolate_frontend: bool = False) -> None:
        self.worker = worker
        self.max_expansion = max_expansion  # [frontend] max-expansion-size
        defaults = FrontendConfig()
        # [frontend] time-budget and memory-budget: what one build's Dockerfile may cost the daemon
        self.frontend_budget = frontend_budget or FrontendBudget(defaults.time_budget, defaults.memory_budget)
        self.isolate_frontend = isolate_frontend  # the daemon's: a process per build (frontend_process)
        self.solver = Solver(worker, worker.cache, max_parallelism=max_parallelism)
        self.image_defaults = dict(image_defaults or {})

    async def build(self, request: BuildRequest, providers: Providers, progress: ProgressWriter,
                    *, session_id: str = "") -> BuildResult:
        job = self.new_job(request, providers, progress, session_id=session_id)
        if request.frontend:
            platforms, definitions, image_configs = await self.run_frontend(request, job)
            if not definitions:  # a check request: its report is the result
                return BuildResult(dict(getattr(job, "frontend_response", {}) or {}), [])
        else:
            if request.definition is None:
                raise BuildError("no build definition given", hint="pipe an LLB definition on stdin or pass --frontend")
            platforms, definitions, image_configs = [self.worker.platform], [request.definition], [None]
        return await self.solve_and_export(request, job, platforms, definitions, image_configs)

    def new_job(self, request: BuildRequest, providers: Providers, progress: ProgressWriter,
                *, session_id: str = "") -> Job:
        from pybuildkit.worker import remotecache

        for output in request.outputs:
            validate_output(output, require_dest=False)
        for kind, attrs in request.cache_exports:  # checked before anything runs
            remotecache.parse_export(kind, attrs)
        for kind, attrs in request.cache_imports:
            remotecache.parse_import(kind, attrs)
        return Job(progress, providers=providers, entitlements=request.entitlements, session_id=session_id)

    async def solve_and_export(self, request: BuildRequest, job: Job, platforms: Sequence[Platform],
                               definitions: Sequence[pb.Definition],
                               image_configs: Sequence[dict | None]) -> BuildResult:
        """Solve one definition per platform, then run the outputs (the daemon's gateway path
        arrives here with definitions a frontend produced earlier)."""
        if request.no_cache:
            from pybuildkit.solver.llb.marshal import digest_of

            for definition in definitions:
                for raw in getattr(definition, "def"):
                    definition.metadata[digest_of(raw)].ignore_cache = True
        from pybuildkit.worker import remotecache

        cache_exports = [remotecache.parse_export(kind, attrs) for kind, attrs in request.cache_exports]
        cache_imports = [remotecache.parse_import(kind, attrs) for kind, attrs in request.cache_imports]
        if cache_imports:
            job.cache_sources = await remotecache.open_imports(self.worker, cache_imports, job)
        graphs = [load_definition(d) for d in definitions]
        try:
            solved = await asyncio.gather(*(self.solver.solve(g, job) for g in graphs))
        except SolveError as exc:
            from pybuildkit.appliance.error_excerpt import with_excerpt

            located = with_excerpt(exc, definitions)
            if located is exc:
                raise
            raise located from exc
        results = [(p, s.result) for p, s in zip(platforms, solved)]
        inline = None
        if any(spec.type == "inline" for spec in cache_exports):
            inline = self._inline_cache(list(solved))
        job.inline_cache = inline  # type: ignore[attr-defined]  # read by the image exporter calls
        response = await self._export(request, results, list(image_configs), job)
        response.update(await remotecache.export_caches(self.worker, cache_exports, solved, graphs, job))
        return BuildResult(response, results)

    def _inline_cache(self, solved):
        from pybuildkit.worker.remotecache.inline import records_for_image

        def value(position: int, blobs, options) -> str | None:
            return records_for_image(self.worker, solved[position], blobs, compression=options.compression,
                                     level=options.compression_level, force=options.force_compression,
                                     epoch=options.source_date_epoch if options.rewrite_timestamp else None)

        return value

    async def run_frontend(self, request: BuildRequest, job: Job):
        return await self._frontend(request, job)

    async def _frontend(self, request: BuildRequest, job: Job):
        if request.frontend not in ("dockerfile.v0",):
            raise BuildError(f"unsupported frontend {request.frontend!r}", hint="use --frontend dockerfile.v0")
        from pybuildkit.appliance.dockerfile_inputs import load_frontend_inputs
        from pybuildkit.frontend.dockerfile.builder import build as dockerfile_build

        from pybuildkit.appliance.internal_steps import InternalStep

        filename = request.frontend_attrs.get("filename", "Dockerfile").rsplit("/", 1)[-1]
        definition_step = InternalStep(job.progress, f"[internal] load build definition from {filename}")
        try:
            # in a thread: reading the Dockerfile may wait on the client's session
            inputs = await asyncio.to_thread(load_frontend_inputs, request, job,
                                             lambda ref, platform: self._resolve_with_step(job, ref, platform))
        except BuildError as exc:
            definition_step.done(exc.message)
            raise
        if self.max_expansion:
            inputs = dataclasses.replace(inputs, max_expansion=self.max_expansion)
        definition_step.transferred("dockerfile", len(inputs.dockerfile))
        definition_step.done()
        ignore_step = InternalStep(job.progress, "[internal] load .dockerignore")
        ignore_step.transferred("context", len(inputs.dockerignore or b""))
        ignore_step.done()
        if self.isolate_frontend:
            from pybuildkit.appliance.frontend_process import run_in_process

            result = await run_in_process(inputs, self.frontend_budget)
        else:
            result = await run_budgeted(dockerfile_build, inputs, self.frontend_budget)
        for warning in result.warnings:
            short = str(getattr(warning, "short", warning)).encode()
            description = getattr(warning, "description", "")
            job.progress.warning(WarningEvent(vertex="", level=1, short=short,
                                              detail=[description.encode()] if description else [],
                                              url=getattr(warning, "url", "")))
        if result.check_report is not None:
            job.frontend_response = {CHECK_RESULT_TEXT: result.check_report,  # type: ignore[attr-defined]
                                     CHECK_RESULT_STATUS: "1" if result.check_failed else "0"}
            return [], [], []
        wanted = set(result.entitlements)
        allowed = self.worker.allowed_entitlements(request.entitlements)
        missing = sorted(wanted - allowed)
        if missing:
            configured = set(self.worker.config.insecure_entitlements)
            parts = []
            for ent in missing:
                if ent not in configured:
                    parts.append(f"{ent} is not allowed by the builder (add it to insecure-entitlements)")
                if ent not in request.entitlements:
                    parts.append(f"{ent} was not requested (pass --allow {ent})")
            raise EntitlementError("; ".join(parts))
        return result.platforms, result.definitions, result.image_configs

    async def _resolve_with_step(self, job: Job, ref: str, platform: Platform) -> tuple[str, dict]:
        """Each image the frontend looks up is an `[internal] load metadata for REF` step."""
        from pybuildkit.appliance.internal_steps import InternalStep
        from pybuildkit.worker.registry.reference import parse_reference

        try:
            shown = str(parse_reference(ref))
        except BuildError:
            shown = ref
        step = InternalStep(job.progress, f"[internal] load metadata for {shown}")
        try:
            found = await self._resolve_image_config(ref, platform, job)
        except BuildError as exc:
            step.done(exc.message)
            raise
        step.done()
        return found

    async def _resolve_image_config(self, ref: str, platform: Platform, job: Job | None = None) -> tuple[str, dict]:
        if ref.startswith("oci-layout://"):  # a named context from the client's --oci-layout
            from pybuildkit.worker.ops.source_oci import find_tag, layout_dir, resolve_layout

            name, _, digest = ref.removeprefix("oci-layout://").partition("@")
            store_id, _, tag = name.partition(":")

            def read() -> tuple[str, dict]:
                layout = layout_dir(job, store_id)
                found = digest or find_tag(layout, tag or "latest")
                return found, resolve_layout(self.worker.content, layout, store_id, found, platform).config

            found, config = await asyncio.to_thread(read)
            return f"oci-layout://{store_id}@{found}", config
        resolved = await self.worker.resolve_image(ref, platform)
        digest_ref = f"{resolved.ref.repository}@{resolved.root_digest}"
        return digest_ref, resolved.config

    async def _export(self, request: BuildRequest, results, image_configs, job: Job) -> dict[str, str]:
        response: dict[str, str] = {}
        job.build_args_epoch = epoch_from_attrs(request.frontend_attrs)  # type: ignore[attr-defined]
        session = getattr(job, "output_session", None)
        for index, output in enumerate(request.outputs):
            started = now_ns()
            name = f"exporting to {EXPORT_NAMES.get(output.type, output.type)}"
            event = VertexEvent(f"export-{output.type}-{started}", name, started=started)
            job.progress.vertex(event)
            attrs = dict(output.attrs)
            if output.type in IMAGE_EXPORTERS:
                attrs = {**self.image_defaults, **attrs}  # the host's defaults, the client's choice first
            try:
                if session is not None and output.type in CLIENT_SIDE_EXPORTERS:
                    attrs.pop("dest", None)  # the client writes it; a daemon never writes client paths
                    response.update(await self._export_to_session(session, index, output.type, attrs, results,
                                                                  image_configs, job, event.digest))
                else:
                    response.update(await self._export_here(output.type, attrs, results, image_configs, job,
                                                            event.digest))
            except BaseException as exc:  # a failed push or write closes its step with ERROR
                event.completed = now_ns()
                event.error = ("context canceled" if isinstance(exc, asyncio.CancelledError)
                               else getattr(exc, "message", None) or str(exc))
                job.progress.vertex(event)
                raise
            event.completed = now_ns()
            job.progress.vertex(event)
        return response

    async def _export_here(self, kind: str, attrs: dict[str, str], results, image_configs, job: Job,
                           vertex: str) -> dict[str, str]:
        from pybuildkit.worker.exporters.image import export_image
        from pybuildkit.worker.exporters.local import export_local, export_tar

        split = _bool_attr(attrs, "platform-split", None)
        if kind == "local":
            await asyncio.to_thread(export_local, self.worker.snapshots, results, Path(attrs["dest"]),
                                    platform_split=split)
        elif kind == "tar":
            dest = attrs.get("dest", "-")
            if dest == "-":
                await asyncio.to_thread(export_tar, self.worker.snapshots, results, sys.stdout.buffer,
                                        platform_split=split)
            else:
                with open(dest, "wb") as handle:
                    await asyncio.to_thread(export_tar, self.worker.snapshots, results, handle, platform_split=split)
        else:
            return await export_image(self.worker, kind, attrs, results, image_configs, job, vertex=vertex,
                                      build_args_epoch=getattr(job, "build_args_epoch", None),
                                      inline_cache=getattr(job, "inline_cache", None))
        return {}

    async def _export_to_session(self, session, index: int, kind: str, attrs: dict[str, str], results,
                                 image_configs, job: Job, vertex: str) -> dict[str, str]:
        """Outputs that land on the client travel back over its session (FileSend)."""
        import shutil
        import tempfile

        from pybuildkit.worker.exporters.image import export_image
        from pybuildkit.worker.exporters.local import export_local, export_tar

        split = _bool_attr(attrs, "platform-split", None)
        if kind == "local":
            tmp = Path(tempfile.mkdtemp(prefix="export-", dir=self.worker.run_dir))
            try:
                await asyncio.to_thread(export_local, self.worker.snapshots, results, tmp / "out", platform_split=split)
                await session.send_directory(index, tmp / "out")
            finally:
                await asyncio.to_thread(shutil.rmtree, tmp, True)
            return {}
        if kind in ("oci", "docker") and _bool_attr(attrs, "tar", True) is False:
            tmp = Path(tempfile.mkdtemp(prefix="export-", dir=self.worker.run_dir))
            try:
                layout_response = await export_image(self.worker, kind, attrs, results, image_configs, job,
                                                     vertex=vertex, layout_dir=tmp / "out")
                await session.send_directory(index, tmp / "out")
            finally:
                await asyncio.to_thread(shutil.rmtree, tmp, True)
            return layout_response
        if kind == "tar":
            writer = session.open_file_send(index)
            await asyncio.to_thread(export_tar, self.worker.snapshots, results, writer, platform_split=split)
            await writer.finish()
            return {}
        # the image's digests go in the FileSend call's metadata: the call opens once they are
        # known, before the tarball is written, which then streams straight to the client
        writers: list[Any] = []  # the session's FileSendWriters

        def open_send(response: dict[str, str]) -> Any:
            writers.append(session.open_file_send(index, response))
            return writers[-1]

        try:
            response = await export_image(self.worker, kind, attrs, results, image_configs, job, vertex=vertex,
                                          sink=open_send, build_args_epoch=getattr(job, "build_args_epoch", None),
                                          inline_cache=getattr(job, "inline_cache", None))
        except BaseException:
            for writer in writers:
                writer.abort()  # the client drops its partial file
            raise
        for writer in writers:
            await writer.finish()
        return response


def _bool_attr(attrs: Mapping[str, str], key: str, default: bool | None) -> bool | None:
    if key not in attrs:
        return default
    value = attrs[key].lower()
    if value in ("true", "1", ""):
        return True
    if value in ("false", "0"):
        return False
    raise BuildError(f"invalid value {attrs[key]!r} for {key}: expected true or false")


def make_builder(config, *, log=None, cgroup_parent: str | None = None, isolate_frontend: bool = False) -> Builder:
    from pybuildkit.worker.worker import WorkerConfig

    worker = Worker(WorkerConfig(root=config.root, snapshotter=config.worker.snapshotter,
                                 binary=config.worker.binary, max_parallelism=config.worker.max_parallelism,
                                 insecure_entitlements=config.insecure_entitlements,
                                 registries=config.registries, platform=host_platform(),
                                 cgroup_parent=cgroup_parent), log=log)
    worker.check()
    frontend = getattr(config, "frontend", None)
    return Builder(worker, max_parallelism=config.worker.max_parallelism,
                   image_defaults=getattr(config, "image_exporter_defaults", None),
                   max_expansion=getattr(frontend, "max_expansion_size", None),
                   frontend_budget=FrontendBudget(frontend.time_budget, frontend.memory_budget) if frontend else None,
                   isolate_frontend=isolate_frontend)
