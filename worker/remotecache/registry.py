"""`type=registry`: the cache manifest and its blobs in a registry repository."""
from __future__ import annotations

import json

from pybuildkit.solver.scheduler import Job
from pybuildkit.worker.asyncutil import gather_or_cancel
from pybuildkit.worker.content.store import Descriptor
from pybuildkit.worker.remotecache import common
from pybuildkit.worker.remotecache.format import CacheIndex
from pybuildkit.worker.remotecache.options import CacheExport, CacheImport


async def export(worker, spec: CacheExport, manifest: common.CacheManifest, job: Job,
                 event) -> None:
    """Upload the blobs (skipping those the registry has), then the manifest under the ref's tag.

    The registry client's image push walks manifests as image documents; a cache index lists
    layer blobs instead, so the cache uploads go blob by blob here."""
    from pybuildkit.worker.registry.reference import parse_reference

    client = worker.registry
    target = parse_reference(spec.ref)
    endpoint = client.hosts.endpoints(target.domain, for_push=True)[-1]
    scope = f"repository:{target.path}:pull,push"

    async def one(desc: Descriptor) -> None:
        status = common.blob_status(job, event, f"writing layer {desc.digest}", desc.size)
        await client._retrying(f"pushing {desc.digest} to {target.repository}", endpoint.host,
                               lambda: client._upload_blob(endpoint, target, desc, scope))
        common.done(job, status)

    await gather_or_cancel(*(one(d) for d in manifest.blobs))
    tag = target.tag or "latest"
    status = common.blob_status(job, event, f"writing manifest {manifest.root.digest}", manifest.root.size)
    await client._retrying(f"pushing manifest {manifest.root.digest}", endpoint.host,
                           lambda: client._put_manifest(endpoint, target, manifest.root, manifest.manifest_bytes,
                                                        tag, scope))
    common.done(job, status)


async def fetch_manifest(worker, ref_text: str) -> tuple[object, dict]:
    from pybuildkit.worker.registry.reference import parse_reference

    client = worker.registry
    ref = parse_reference(ref_text)
    _endpoint, data, _media = await client._get_manifest(client.hosts.endpoints(ref.domain), ref, ref.object)
    return ref, json.loads(data)


async def open_import(worker, spec: CacheImport, job: Job) -> tuple[CacheIndex, common.ImportedManifest, common.Fetch] | None:
    """The cache behind `ref`: a cache manifest, or an image whose config carries inline cache."""
    from pybuildkit.worker.remotecache import inline

    client = worker.registry
    ref, doc = await fetch_manifest(worker, spec.ref)

    async def read(desc: Descriptor) -> bytes:
        await client.fetch_blob(ref, desc)
        return worker.content.read_bytes(desc.digest)

    async def fetch(desc: Descriptor, progress) -> None:
        await client.fetch_blob(ref, desc, progress)

    if "manifests" in doc and not any(m.get("mediaType") == common.CACHE_CONFIG_MEDIA_TYPE
                                      for m in doc["manifests"]):
        doc = await inline.platform_manifest(worker, ref, doc)
    config_desc = doc.get("config") or {}
    if "manifests" not in doc and config_desc.get("mediaType") != common.CACHE_CONFIG_MEDIA_TYPE:
        return await inline.open_image(worker, spec.ref, ref, doc, read, fetch, job)
    blobs_needed = [Descriptor.from_json(d) for d in doc.get("manifests", [])] + (
        [Descriptor.from_json(config_desc)] if config_desc else [])
    texts = {d.digest: await read(d) for d in blobs_needed if d.media_type == common.CACHE_CONFIG_MEDIA_TYPE}
    imported = common.read_manifest(doc, lambda d: texts[d.digest])

    async def load(chain):
        return await common.load_chain(worker, job, spec.ref, chain, imported.blobs, fetch, ref)

    return CacheIndex(imported.config, load, name=spec.ref), imported, fetch
