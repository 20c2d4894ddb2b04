"""Snapshot layers to compressed blobs, remembered per (layer, compression, level).

A layer pulled from a registry keeps its original blob unless force-compression asks for
another compression; a layer we built is diffed (from its overlay upper dir, or against its
parent's tree with the native snapshotter), tarred and compressed once.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pybuildkit.worker.compression import Compression
from pybuildkit.worker.content.store import Descriptor
from pybuildkit.worker.snapshot.store import Driver, Snapshot

MEDIA_DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_DOCKER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
MEDIA_DOCKER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
MEDIA_OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_GZIP = MEDIA_OCI_TAR + "+gzip"
MEDIA_OCI_ZSTD = MEDIA_OCI_TAR + "+zstd"


@dataclass(frozen=True)
class LayerBlob:
    descriptor: Descriptor  # media type in OCI terms; converted per manifest flavour
    diff_id: str
    compression: Compression

    def for_manifest(self, oci: bool) -> Descriptor:
        media = media_type(self.compression, oci)
        return Descriptor(media, self.descriptor.digest, self.descriptor.size,
                          dict(self.descriptor.annotations))

    def to_json(self) -> str:
        return json.dumps({"desc": self.descriptor.to_json(), "diff_id": self.diff_id,
                           "compression": str(self.compression)})

    @classmethod
    def from_json(cls, text: str) -> "LayerBlob":
        data = json.loads(text)
        return cls(Descriptor.from_json(data["desc"]), data["diff_id"], Compression(data["compression"]))


def media_type(compression: Compression, oci: bool) -> str:
    if compression == Compression.ZSTD:
        return MEDIA_OCI_ZSTD if oci else MEDIA_DOCKER_ZSTD
    if compression == Compression.UNCOMPRESSED:
        return MEDIA_OCI_TAR if oci else MEDIA_DOCKER_TAR
    return MEDIA_OCI_GZIP if oci else MEDIA_DOCKER_GZIP


def compression_of_media_type(media: str) -> Compression:
    if media.endswith("zstd"):
        return Compression.ZSTD
    if media.endswith("gzip"):
        return Compression.GZIP
    return Compression.UNCOMPRESSED


class LayerExporter:
    def __init__(self, worker) -> None:
        self.worker = worker

    def _cache_key(self, layer_id: str, compression: Compression, level: int | None, epoch: int | None) -> str:
        return f"blob:{layer_id}:{compression}:{level}:{epoch}"

    def blob_for(self, layer_id: str, *, compression: Compression, level: int | None, force: bool,
                 epoch: int | None) -> LayerBlob | None:
        """The blob of one layer; None when the layer holds no change (an empty layer)."""
        worker = self.worker
        blob: LayerBlob | None
        original = worker.meta.get("layerblob:" + layer_id)
        if original is not None:
            cached = worker.meta.get("blobinfo:" + original)
            if cached is not None:
                blob = LayerBlob.from_json(cached)
                if not force or blob.compression == compression:
                    return blob
        key = self._cache_key(layer_id, compression, level, epoch)
        cached = worker.meta.get(key)
        if cached is not None:
            blob = LayerBlob.from_json(cached) if cached != "empty" else None
            if blob is None or worker.content.has(blob.descriptor.digest):
                return blob
        blob = self._build(layer_id, compression, level, epoch)
        worker.meta.put(key, blob.to_json() if blob else "empty")
        return blob

    def _build(self, layer_id: str, compression: Compression, level: int | None, epoch: int | None) -> LayerBlob | None:
        from pybuildkit.worker.compression import compress_tar
        from pybuildkit.worker.layer.diff import changes_between, changes_from_overlay_upper, write_layer_tar

        store = self.worker.snapshots
        path = store.layer_path(layer_id)
        if store.driver == Driver.NATIVE:
            parent = store.layer_parent(layer_id)
            lower = store.layer_path(parent) if parent else None
            changes = changes_between(lower, path)
        else:
            changes = changes_from_overlay_upper(path)
        if not changes:
            return None
        tmpdir = self.worker.run_dir
        fd, tar_name = tempfile.mkstemp(prefix="layer-", suffix=".tar", dir=tmpdir)
        try:
            with os.fdopen(fd, "wb") as tar_out:
                write_layer_tar(changes, path, tar_out, source_date_epoch=epoch)
            with self.worker.content.writer() as writer:
                info = compress_tar(Path(tar_name), writer, compression, level)
                digest = writer.commit()
        finally:
            os.unlink(tar_name)
        desc = Descriptor(info.media_type_oci, digest, info.size, dict(info.annotations))
        blob = LayerBlob(desc, info.diff_id, compression)
        self.worker.meta.put("blobinfo:" + digest, blob.to_json())
        return blob

    def blobs(self, snapshot: Snapshot | None, *, compression: Compression, level: int | None,
              force: bool, epoch: int | None) -> list[LayerBlob]:
        if snapshot is None:
            return []
        out = []
        for layer_id in self.layer_chain(snapshot):
            blob = self.blob_for(layer_id, compression=compression, level=level, force=force, epoch=epoch)
            if blob is not None:
                out.append(blob)
        return out

    def layer_chain(self, snapshot: Snapshot) -> list[str]:
        """Bottom-first layer ids; native snapshots keep only their top, so walk the parents."""
        store = self.worker.snapshots
        if store.driver != Driver.NATIVE:
            return list(snapshot.layers)
        chain: list[str] = []
        current = snapshot.top
        while current is not None:
            chain.append(current)
            current = store.layer_parent(current)
        return chain[::-1]

    def register_pulled(self, layer_id: str, desc: Descriptor, diff_id: str) -> None:
        """Remember a pulled layer's original blob so exports reuse its bytes."""
        blob = LayerBlob(Descriptor(desc.media_type, desc.digest, desc.size, dict(desc.annotations)),
                         diff_id, compression_of_media_type(desc.media_type))
        self.worker.meta.put("blobinfo:" + desc.digest, blob.to_json())
