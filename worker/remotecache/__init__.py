"""Build cache export and import (`--export-cache`, `--import-cache`): inline, registry, local.

`open_imports` turns import specs into cache sources for the solver (nothing is fetched but
the manifests and configs; layers come when a step reads them); `export_caches` writes a
finished build's records and blobs. Both show up in progress as vertices with bytes.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.progress import WarningEvent, now_ns
from pybuildkit.worker.remotecache.options import (
    CacheExport,
    CacheImport,
    parse_export,
    parse_import,
)

if TYPE_CHECKING:  # the engine's modules load with the first import or export, not for option parsing
    from pybuildkit.solver.definition import Graph
    from pybuildkit.solver.scheduler import CacheSource, Job, SolveResult

__all__ = ["CacheExport", "CacheImport", "export_caches", "open_imports", "parse_export", "parse_import"]


def _warn(job: Job, text: str) -> None:
    job.progress.warning(WarningEvent(vertex="", level=1, short=text.encode()))


async def open_imports(worker, specs: Sequence[CacheImport], job: Job) -> list[CacheSource]:
    from pybuildkit.worker.registry.client import RegistryError
    from pybuildkit.worker.remotecache import common, local, mounts, registry

    sources: list[CacheSource] = []
    for spec in specs:
        name = spec.ref or spec.src
        event = common.VertexEvent(f"import-cache-{name}-{now_ns()}", f"importing cache manifest from {name}",
                                   started=now_ns())
        job.progress.vertex(event)
        try:
            opened = await (registry.open_import(worker, spec, job) if spec.type == "registry"
                            else local.open_import(worker, spec, job))
        except RegistryError as exc:
            if exc.status != 404:
                event.error, event.completed = str(exc), now_ns()
                job.progress.vertex(event)
                raise
            opened = None
        if opened is None:
            _warn(job, f"no cache to import at {name} (a first build starts cold)")
        else:
            index, imported, fetch = opened
            sources.append(index)
            if spec.cache_mounts:
                for desc in imported.mounts:
                    status = common.blob_status(job, event, f"cache mount {desc.digest}", desc.size)
                    if not worker.content.has(desc.digest):
                        await fetch(desc, lambda current, total, status=status: None)
                    await asyncio.to_thread(mounts.unpack, worker, desc)
                    common.done(job, status)
        event.completed = now_ns()
        job.progress.vertex(event)
    return sources


async def export_caches(worker, specs: Sequence[CacheExport], solved: Sequence[SolveResult],
                        graphs: Sequence[Graph], job: Job) -> dict[str, str]:
    """Write every non-inline cache export (inline ones ride along with the image exporter)."""
    if all(spec.type == "inline" for spec in specs):
        return {}  # most builds: nothing of the exporters' to import
    from pybuildkit.worker.remotecache import common, local, mounts, registry

    response: dict[str, str] = {}
    for spec in specs:
        if spec.type == "inline":
            continue
        name = spec.ref or spec.dest
        event = common.export_vertex(job, name)
        try:
            config = await common.solve_config(worker, spec, solved)
            mount_blobs = []
            if spec.cache_mounts:
                for cache_id in mounts.mount_ids(graphs):
                    desc = await asyncio.to_thread(mounts.pack, worker, cache_id)
                    if desc is not None:
                        mount_blobs.append(desc)
            manifest = await asyncio.to_thread(common.build_manifest, worker, spec, config, mount_blobs)
            if spec.type == "registry":
                await registry.export(worker, spec, manifest, job, event)
            else:
                await asyncio.to_thread(local.export, worker, spec, manifest, job, event)
            response["cache.manifest"] = manifest.root.digest
        except BuildError as exc:
            event.error, event.completed = str(exc), now_ns()
            job.progress.vertex(event)
            if spec.ignore_error:
                _warn(job, f"cache export to {name} failed (ignored): {exc.message}")
                continue
            raise
        event.completed = now_ns()
        job.progress.vertex(event)
    return response
