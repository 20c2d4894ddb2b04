"""`type=inline`: cache records inside the image config (key `moby.buildkit.cache.v0`).

The value is what upstream writes: the records' JSON, base64-encoded (Go marshals []byte that
way), with each record's layer index pointing into the image's own layers. Import is
`--import-cache type=registry,ref=<image>`: the image's layers are the cache's layers.
"""
from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from pybuildkit.solver.scheduler import Job, SolveResult
from pybuildkit.worker.content.store import Descriptor
from pybuildkit.worker.remotecache import common
from pybuildkit.worker.remotecache.format import (
    CacheConfig,
    CacheIndex,
    CacheLayer,
    build_config,
    parse_config,
)

CONFIG_KEY = "moby.buildkit.cache.v0"


def records_for_image(worker, solved: SolveResult, image_blobs: Sequence, *, compression, level: int | None,
                      force: bool, epoch: int | None) -> str | None:
    """The inline value for one platform's image, whose layers are `image_blobs` (bottom first).

    Only min mode exists inline: the records of the steps whose results are a prefix of the
    image's layers, so `--import-cache` of the image hits the final stage's steps."""
    if not solved.result_key or solved.result_key not in solved.keys:
        return None
    final_layers = common.layer_ids(worker, solved.keys[solved.result_key].result)  # type: ignore[arg-type]
    exporter = common.LayerExporter(worker)

    def blobs_of(key, solved_key):
        if solved_key.result is None:
            return None
        own = common.layer_ids(worker, solved_key.result)
        if own != final_layers[:len(own)]:
            return None
        count = sum(1 for layer_id in own if exporter.blob_for(
            layer_id, compression=compression, level=level, force=force, epoch=epoch) is not None)
        own_blobs = image_blobs[:count]
        return [common.ResultBlob(b.descriptor.digest, b.descriptor.media_type, b.descriptor.size, b.diff_id)
                for b in own_blobs]

    config = build_config(solved.keys, solved.result_key, blobs_of)
    if not config.layers:
        return None
    depth: dict[int, int] = {}
    for index, layer in enumerate(config.layers):
        depth[index] = depth[layer.parent] + 1 if layer.parent >= 0 else 0
    records = []
    for record in config.records:
        doc = record.to_json()
        if record.layer is not None:
            doc["layers"] = [{"layer": depth[record.layer]}]
        records.append(doc)
    return base64.b64encode(json.dumps(records, separators=(",", ":")).encode()).decode()


async def platform_manifest(worker, ref, index: dict) -> dict:
    """The host platform's manifest of a multi-platform image."""
    from pybuildkit.worker.registry.client import _matches

    client = worker.registry
    ranked = sorted(index.get("manifests", []), key=lambda m: -_matches(m.get("platform", {}), worker.platform))
    if not ranked:
        return index
    _endpoint, data, _media = await client._get_manifest(client.hosts.endpoints(ref.domain), ref,
                                                         ranked[0]["digest"])
    return json.loads(data)


async def open_image(worker, name: str, ref, manifest: dict, read, fetch, job: Job):
    """An image as a cache: its config's inline records over its own layers, or None."""
    config_desc = Descriptor.from_json(manifest["config"])
    image_config = json.loads(await read(config_desc))
    value = image_config.get(CONFIG_KEY)
    if not value:
        return None
    records = json.loads(base64.b64decode(value)) if isinstance(value, str) else value
    diff_ids = image_config.get("rootfs", {}).get("diff_ids", [])
    layers = []
    for index, raw in enumerate(manifest.get("layers", [])):
        desc = Descriptor.from_json(raw)
        diff_id = diff_ids[index] if index < len(diff_ids) else ""
        layers.append(CacheLayer(desc.digest, index - 1, desc.media_type, diff_id, desc.size))
    parsed = parse_config({"records": records})
    config = CacheConfig(layers, parsed.records)
    blobs = {layer.blob: Descriptor(layer.media_type, layer.blob, layer.size) for layer in layers}

    async def load(chain):
        return await common.load_chain(worker, job, name, chain, blobs, fetch, ref)

    return CacheIndex(config, load, name=name), common.ImportedManifest(config, blobs), fetch
