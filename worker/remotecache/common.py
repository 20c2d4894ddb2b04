"""What the registry and local backends share: the cache config of a solve, the manifest
that carries it, reading one back, and turning an imported layer chain into a snapshot."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pybuildkit.solver.progress import StatusEvent, VertexEvent, now_ns
from pybuildkit.solver.scheduler import Job, LazyResult, SolvedKey, SolveResult
from pybuildkit.worker.content.store import Descriptor
from pybuildkit.worker.exporters.layers import LayerExporter, media_type
from pybuildkit.worker.remotecache.format import (
    CACHE_CONFIG_MEDIA_TYPE,
    CACHE_MOUNT_ANNOTATION,
    CREATED_ANNOTATION,
    UNCOMPRESSED_ANNOTATION,
    CacheConfig,
    CacheFormatError,
    CacheLayer,
    ResultBlob,
    build_config,
    parse_config,
)
from pybuildkit.worker.remotecache.options import CacheExport, Mode
from pybuildkit.worker.snapshot.store import Snapshot

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def layer_ids(worker, snapshot: Snapshot | None) -> list[str]:
    return LayerExporter(worker).layer_chain(snapshot) if snapshot is not None else []


def result_blobs(worker, snapshot: Snapshot | None, export: CacheExport) -> list[ResultBlob]:
    """The layer blobs of a result (compressed once, remembered by the layer exporter)."""
    blobs = LayerExporter(worker).blobs(snapshot, compression=export.compression, level=export.compression_level,
                                        force=export.force_compression, epoch=None)
    return [ResultBlob(b.descriptor.digest, media_type(b.compression, export.oci_mediatypes),
                       b.descriptor.size, b.diff_id) for b in blobs]


def exported_keys(solved: Sequence[SolveResult]) -> tuple[dict[str, SolvedKey], list[str]]:
    keys: dict[str, SolvedKey] = {}
    finals = []
    for one in solved:
        keys.update(one.keys)
        if one.result_key:
            finals.append(one.result_key)
    return keys, finals


async def solve_config(worker, export: CacheExport, solved: Sequence[SolveResult]) -> CacheConfig:
    """The cache config of a build: mode=max gives every step's result, mode=min only results
    that are part of a final result's layers (its own stage's steps)."""
    from pybuildkit.solver.scheduler import materialize

    keys, finals = exported_keys(solved)
    for key, solved_key in keys.items():
        if export.mode == Mode.MIN and key not in finals and isinstance(solved_key.result, LazyResult) and \
                not all(worker.content.has(d) for d in solved_key.result.blobs):
            # not fetched, so not part of a final result's layers: min mode exports no result for it
            solved_key.result = None
            continue
        solved_key.result = await materialize(solved_key.result)
    final_chains = [layer_ids(worker, keys[k].result) for k in finals if k in keys]  # type: ignore[arg-type]

    def wanted(key: str, solved_key: SolvedKey) -> bool:
        if export.mode == Mode.MAX or key in finals:
            return True
        own = layer_ids(worker, solved_key.result)  # type: ignore[arg-type]
        return any(own == chain[:len(own)] for chain in final_chains)

    def blobs_of(key: str, solved_key: SolvedKey):
        if solved_key.result is None or not wanted(key, solved_key):
            return None
        return result_blobs(worker, solved_key.result, export)  # type: ignore[arg-type]

    def build() -> CacheConfig:
        merged = CacheConfig()
        created = now_rfc3339()
        for final in finals:
            part = build_config(keys, final, blobs_of, created, every=export.mode == Mode.MAX)
            merged = merge_configs(merged, part)
        return merged

    return await asyncio.to_thread(build)


def merge_configs(a: CacheConfig, b: CacheConfig) -> CacheConfig:
    """One config holding both (multi-platform builds export one record graph per platform)."""
    if not a.records:
        return b
    offset_layers = len(a.layers)
    offset_records = len(a.records)
    from dataclasses import replace

    layers = a.layers + [replace(layer, parent=layer.parent + offset_layers if layer.parent >= 0 else -1)
                         for layer in b.layers]
    records = a.records + [replace(r, layer=r.layer + offset_layers if r.layer is not None else None,
                                   inputs=[[replace(i, link=i.link + offset_records) for i in alts]
                                           for alts in r.inputs]) for r in b.records]
    return CacheConfig(layers, records)


@dataclass
class CacheManifest:
    root: Descriptor
    blobs: list[Descriptor]  # layers, cache mounts and the config: everything to upload
    manifest_bytes: bytes


def build_manifest(worker, export: CacheExport, config: CacheConfig,
                   mounts: Sequence[Descriptor] = ()) -> CacheManifest:
    """The document pointing at the config and the blobs: an OCI image manifest whose config is
    the cache config (image-manifest=true), or an index listing the blobs then the config."""
    config_bytes = config.to_bytes()
    config_digest = worker.content.put_bytes(config_bytes)
    config_desc = Descriptor(CACHE_CONFIG_MEDIA_TYPE, config_digest, len(config_bytes))
    layers = []
    for layer in config.layers:
        annotations = {UNCOMPRESSED_ANNOTATION: layer.diff_id}
        if layer.created_at:
            annotations[CREATED_ANNOTATION] = layer.created_at
        layers.append(Descriptor(layer.media_type, layer.blob, layer.size, annotations))
    unique = list({d.digest: d for d in layers}.values()) + list(mounts)
    if export.image_manifest:
        doc: dict = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                     "config": config_desc.to_json(), "layers": [d.to_json() for d in unique]}
    else:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX if export.oci_mediatypes else DOCKER_LIST,
               "manifests": [d.to_json() for d in unique] + [config_desc.to_json()]}
    data = json.dumps(doc, separators=(",", ":")).encode()
    digest = worker.content.put_bytes(data)
    return CacheManifest(Descriptor(doc["mediaType"], digest, len(data)), unique + [config_desc], data)


@dataclass
class ImportedManifest:
    config: CacheConfig
    blobs: dict[str, Descriptor]
    mounts: list[Descriptor] = field(default_factory=list)


def read_manifest(doc: Mapping, read_blob: Callable[[Descriptor], bytes]) -> ImportedManifest:
    """The cache config and blob descriptors of a cache manifest or index (ours or BuildKit's)."""
    if "manifests" in doc:
        entries = [Descriptor.from_json(d) for d in doc["manifests"]]
        configs = [d for d in entries if d.media_type == CACHE_CONFIG_MEDIA_TYPE]
        others = [d for d in entries if d.media_type != CACHE_CONFIG_MEDIA_TYPE]
    else:
        config = Descriptor.from_json(doc.get("config") or {"digest": "", "size": 0})
        configs = [config] if config.media_type == CACHE_CONFIG_MEDIA_TYPE else []
        others = [Descriptor.from_json(d) for d in doc.get("layers", [])]
    if not configs:
        raise CacheFormatError("not a build cache: no blob of media type " + CACHE_CONFIG_MEDIA_TYPE,
                               hint="import an image with inline cache, or a cache exported with --export-cache")
    config = parse_config(read_blob(configs[0]))
    blobs = {d.digest: d for d in others if CACHE_MOUNT_ANNOTATION not in d.annotations}
    mounts = [d for d in others if CACHE_MOUNT_ANNOTATION in d.annotations]
    return ImportedManifest(config, blobs, mounts)


def descriptor_of(layer: CacheLayer, blobs: Mapping[str, Descriptor]) -> Descriptor:
    known = blobs.get(layer.blob)
    media = layer.media_type or (known.media_type if known else "application/vnd.oci.image.layer.v1.tar+gzip")
    size = layer.size or (known.size if known else 0)
    return Descriptor(media, layer.blob, size, dict(known.annotations) if known else {})


def diff_id_of(layer: CacheLayer, blobs: Mapping[str, Descriptor]) -> str:
    if layer.diff_id:
        return layer.diff_id
    known = blobs.get(layer.blob)
    diff_id = known.annotations.get(UNCOMPRESSED_ANNOTATION, "") if known else ""
    if not diff_id:
        raise CacheFormatError(f"cache layer {layer.blob} has no diffID")
    return diff_id


Fetch = Callable[[Descriptor, Callable[[int, int], None]], Awaitable[None]]


async def load_chain(worker, job: Job, name: str, chain: list[CacheLayer], blobs: Mapping[str, Descriptor],
                     fetch: Fetch, ref) -> Snapshot:
    """Fetch the missing blobs of an imported result (a vertex with bytes), then unpack them as
    image layers (so later exports reuse the very same blobs)."""
    from pybuildkit.worker.registry.client import ResolvedImage

    descs = [descriptor_of(layer, blobs) for layer in chain]
    diff_ids = [diff_id_of(layer, blobs) for layer in chain]
    missing = [d for d in descs if not worker.content.has(d.digest)]
    if missing:
        started = now_ns()
        event = VertexEvent(f"import-cache-layers-{name}-{started}", f"importing cache layers from {name}",
                            started=started)
        job.progress.vertex(event)
        for desc in missing:
            status = StatusEvent(id=f"fetching {desc.digest}", vertex=event.digest, name=f"fetching {desc.digest}",
                                 total=desc.size, started=now_ns(), timestamp=now_ns())

            def progress(current: int, total: int, status=status) -> None:
                status.current, status.timestamp = current, now_ns()
                job.progress.status(status)

            await fetch(desc, progress)
            status.current, status.completed = desc.size, now_ns()
            job.progress.status(status)
        event.completed = now_ns()
        job.progress.vertex(event)
    resolved = ResolvedImage(ref, "", "", {}, {"rootfs": {"type": "layers", "diff_ids": diff_ids}}, "", descs, "")
    return await worker.unpack_image(resolved, None)


def export_vertex(job: Job, name: str) -> VertexEvent:
    started = now_ns()
    event = VertexEvent(f"export-cache-{name}-{started}", f"exporting cache to {name}", started=started)
    job.progress.vertex(event)
    return event


def blob_status(job: Job, vertex: VertexEvent, what: str, size: int) -> StatusEvent:
    status = StatusEvent(id=what, vertex=vertex.digest, name=what, total=size, started=now_ns(), timestamp=now_ns())
    job.progress.status(status)
    return status


def done(job: Job, status: StatusEvent) -> None:
    status.current, status.completed = status.total, now_ns()
    job.progress.status(status)
