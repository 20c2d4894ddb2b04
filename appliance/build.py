"""One build, end to end, inside this process: frontend, solve, export.

The daemon's Solve handler will call the same `run_build` with session-backed providers.
"""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pybuildkit.solver.definition import load_definition
from pybuildkit.solver.errors import BuildError, EntitlementError
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.platforms import Platform, host_platform
from pybuildkit.solver.progress import ProgressWriter, VertexEvent, WarningEvent, now_ns
from pybuildkit.solver.scheduler import Job, Solver
from pybuildkit.worker.providers import Providers
from pybuildkit.worker.snapshot.store import Snapshot
from pybuildkit.worker.worker import Worker

LOCAL_EXPORTERS = ("local", "tar")
IMAGE_EXPORTERS = ("image", "oci", "docker")


@dataclass(frozen=True)
class Output:
    type: str
    attrs: Mapping[str, str]


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

    def __init__(self, worker: Worker, *, max_parallelism: int) -> None:
        self.worker = worker
        self.solver = Solver(worker, worker.cache, max_parallelism=max_parallelism)

    async def build(self, request: BuildRequest, providers: Providers, progress: ProgressWriter,
                    *, session_id: str = "") -> BuildResult:
        from pybuildkit.worker import remotecache

        for output in request.outputs:
            validate_output(output)
        cache_exports = [remotecache.parse_export(kind, attrs) for kind, attrs in request.cache_exports]
        cache_imports = [remotecache.parse_import(kind, attrs) for kind, attrs in request.cache_imports]
        job = Job(progress, providers=providers, entitlements=request.entitlements, session_id=session_id)
        if cache_imports:
            job.cache_sources = await remotecache.open_imports(self.worker, cache_imports, job)
        if request.frontend:
            platforms, definitions, image_configs = await self._frontend(request, job)
        else:
            if request.definition is None:
                raise BuildError("no build definition given", hint="pipe an LLB definition on stdin or pass --frontend")
            platforms, definitions, image_configs = [self.worker.platform], [request.definition], [None]
        if request.no_cache:
            for definition in definitions:
                for raw in getattr(definition, "def"):
                    from pybuildkit.solver.llb.marshal import digest_of
                    definition.metadata[digest_of(raw)].ignore_cache = True
        graphs = [load_definition(d) for d in definitions]
        solved = await asyncio.gather(*(self.solver.solve(g, job) for g in graphs))
        results = [(p, s.result) for p, s in zip(platforms, solved)]
        inline = None
        if any(spec.type == "inline" for spec in cache_exports):
            inline = self._inline_cache(list(solved))
        response = await self._export(request, results, image_configs, job, inline)
        response.update(await remotecache.export_caches(self.worker, cache_exports, solved, graphs, job))
        return BuildResult(response, results)

    def _inline_cache(self, solved):
        from pybuildkit.worker.remotecache.inline import records_for_image

        def value(position: int, blobs, options) -> str | None:
            return records_for_image(self.worker, solved[position], blobs, compression=options.compression,
                                     level=options.compression_level, force=options.force_compression,
                                     epoch=options.source_date_epoch if options.rewrite_timestamp else None)

        return value

    async def _frontend(self, request: BuildRequest, job: Job):
        if request.frontend not in ("dockerfile.v0",):
            raise BuildError(f"unsupported frontend {request.frontend!r}", hint="use --frontend dockerfile.v0")
        from pybuildkit.appliance.dockerfile_inputs import load_frontend_inputs
        from pybuildkit.frontend.dockerfile.builder import build as dockerfile_build

        inputs = load_frontend_inputs(request, job, self._resolve_image_config)
        result = await dockerfile_build(inputs)
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
        for warning in result.warnings:
            short = str(getattr(warning, "short", warning)).encode()
            job.progress.warning(WarningEvent(vertex="", level=1, short=short))
        return result.platforms, result.definitions, result.image_configs

    async def _resolve_image_config(self, ref: str, platform: Platform) -> tuple[str, dict]:
        resolved = await self.worker.resolve_image(ref, platform)
        digest_ref = f"{resolved.ref.repository}@{resolved.root_digest}"
        return digest_ref, resolved.config

    async def _export(self, request: BuildRequest, results, image_configs, job: Job,
                      inline_cache=None) -> dict[str, str]:
        from pybuildkit.worker.exporters.local import export_local, export_tar

        response: dict[str, str] = {}
        for output in request.outputs:
            started = now_ns()
            event = VertexEvent(f"export-{output.type}-{started}", f"exporting to {output.type}", started=started)
            job.progress.vertex(event)
            attrs = dict(output.attrs)
            split = _bool_attr(attrs, "platform-split", None)
            if output.type == "local":
                await asyncio.to_thread(export_local, self.worker.snapshots, results, Path(attrs["dest"]),
                                        platform_split=split)
            elif output.type == "tar":
                dest = attrs.get("dest", "-")
                if dest == "-":
                    await asyncio.to_thread(export_tar, self.worker.snapshots, results, sys.stdout.buffer,
                                            platform_split=split)
                else:
                    with open(dest, "wb") as handle:
                        await asyncio.to_thread(export_tar, self.worker.snapshots, results, handle,
                                                platform_split=split)
            else:
                from pybuildkit.worker.exporters.image import (
                    export_image,  # the image exporters issue
                )

                response.update(await export_image(self.worker, output.type, attrs, results, image_configs, job,
                                                   vertex=event.digest, inline_cache=inline_cache))
            event.completed = now_ns()
            job.progress.vertex(event)
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


_OUTPUT_KEYS = {
    "local": {"dest", "platform-split", "mode"},
    "tar": {"dest", "platform-split"},
}


def validate_output(output: Output) -> None:
    if output.type in LOCAL_EXPORTERS:
        allowed = _OUTPUT_KEYS[output.type]
        for key in output.attrs:
            if key not in allowed:
                raise BuildError(f"--output type={output.type}: unknown option {key!r}",
                                 hint="valid options: " + ", ".join(sorted(allowed)))
        if output.type == "local" and not output.attrs.get("dest"):
            raise BuildError("--output type=local requires dest=<dir>")
        return
    if output.type in IMAGE_EXPORTERS or output.type == "cacheonly":
        return
    raise BuildError(f"--output: unknown exporter type {output.type!r}",
                     hint="use one of local, tar, image, oci, docker")


def make_builder(config, *, log=None) -> Builder:
    from pybuildkit.worker.worker import WorkerConfig

    worker = Worker(WorkerConfig(root=config.root, snapshotter=config.worker.snapshotter,
                                 binary=config.worker.binary, max_parallelism=config.worker.max_parallelism,
                                 insecure_entitlements=config.insecure_entitlements,
                                 registries=config.registries, platform=host_platform()), log=log)
    worker.check()
    return Builder(worker, max_parallelism=config.worker.max_parallelism)
