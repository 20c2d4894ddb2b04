"""A blob larger than one PATCH goes to the registry in ranges, read from the store piece by piece."""
from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import httpx
import pytest

from pybuildkit.worker.content.store import Descriptor
from pybuildkit.worker.registry import client as registry_client
from pybuildkit.worker.registry.hosts import RegistryHostConfig
from pybuildkit.worker.registry.reference import parse_reference
from pybuildkit.worker.worker import Worker, WorkerConfig

pytestmark = pytest.mark.integration

LAYER = "application/vnd.oci.image.layer.v1.tar"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _put(worker: Worker, data: bytes, media_type: str) -> Descriptor:
    return Descriptor(media_type, worker.content.put_bytes(data), len(data))


def test_a_blob_of_several_chunks_arrives_whole_and_no_chunk_is_held_in_memory(tmp_path: Path, registry_host: str) -> None:
    worker = Worker(WorkerConfig(root=tmp_path / "root", registries={registry_host: RegistryHostConfig(http=True)}))
    layer_bytes = os.urandom(2 * registry_client.CHUNK + 12345)  # two whole PATCHes and a short one
    layer = _put(worker, layer_bytes, LAYER)
    config = _put(worker, json.dumps({"architecture": "amd64", "os": "linux",
                                      "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}).encode(),
                  "application/vnd.oci.image.config.v1+json")
    manifest = _put(worker, json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "config": config.to_json(),
                                        "layers": [layer.to_json()]}).encode(), MANIFEST)
    del layer_bytes

    async def push() -> int:
        gc.disable()  # what lingers in reference cycles must not count as freed
        tracemalloc.start()
        try:
            await worker.registry.push([parse_reference(f"{registry_host}/upload/ranges:1")], manifest)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            gc.enable()
            await worker.registry.aclose()

    try:
        peak = asyncio.run(push())
    finally:
        worker.close()
    assert peak < registry_client.CHUNK, f"the push held {peak} bytes at once"
    pulled = httpx.get(f"http://{registry_host}/v2/upload/ranges/blobs/{layer.digest}")
    assert pulled.status_code == 200
    assert "sha256:" + hashlib.sha256(pulled.content).hexdigest() == layer.digest
