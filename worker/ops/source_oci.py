"""oci-layout:// sources: an image read from an OCI image layout the client holds.

The layout's index, manifest, config and layer blobs are copied into the content store (each
verified against its digest on the way), after which the image unpacks exactly like a pulled
one and shares its layer snapshots.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.platforms import Platform
from pybuildkit.solver.scheduler import CacheMap, Job, OpContext
from pybuildkit.worker.ops.source_image import chain_ids
from pybuildkit.worker.snapshot.store import Snapshot

if TYPE_CHECKING:
    from pybuildkit.worker.content.store import ContentStore
    from pybuildkit.worker.registry.client import ResolvedImage
    from pybuildkit.worker.worker import Worker


def layout_dir(job: Job | None, store_id: str) -> Path:
    stores = job.providers.oci_stores if job is not None and job.providers is not None else None
    path = stores.layout_dir(store_id) if stores is not None else None
    if path is None:
        raise BuildError(f"no OCI layout named {store_id!r} was given", hint=f"pass --oci-layout {store_id}=<dir>")
    if not (path / "index.json").is_file():
        raise BuildError(f"--oci-layout {store_id}={path}: not an OCI image layout (no index.json)")
    return path


def find_tag(layout: Path, tag: str) -> str:
    """The digest the layout's index.json names `tag` (OCI's ref.name annotation, or containerd's
    image name ending in `:tag`)."""
    try:
        index = json.loads((layout / "index.json").read_text())
    except (OSError, ValueError) as exc:
        raise BuildError(f"OCI layout {layout}: cannot read index.json: {exc}") from None
    for entry in index.get("manifests", []):
        notes = entry.get("annotations") or {}
        if notes.get("org.opencontainers.image.ref.name") == tag or \
                notes.get("io.containerd.image.name", "").rsplit(":", 1)[-1] == tag:
            return entry["digest"]
    raise BuildError(f"OCI layout {layout}: no image tagged {tag!r}",
                     hint="name the image by digest: oci-layout://STORE@sha256:...")


def _import(store: ContentStore, layout: Path, digest: str) -> None:
    """Copy one blob of the layout into the store, streamed and verified against its digest."""
    algo, _, hexdigest = digest.partition(":")
    source = layout / "blobs" / algo / hexdigest
    if not store.has(digest):
        if not source.is_file():
            raise BuildError(f"OCI layout {layout}: blob {digest} is missing")
        with open(source, "rb") as src, store.writer(expected=digest) as writer:
            shutil.copyfileobj(src, writer)  # type: ignore[misc]
            writer.commit()


def resolve_layout(store: ContentStore, layout: Path, ref_name: str, digest: str,
                   platform: Platform) -> ResolvedImage:
    from pybuildkit.worker.content.store import Descriptor
    from pybuildkit.worker.registry.client import ResolvedImage, _matches
    from pybuildkit.worker.registry.reference import parse_reference

    _import(store, layout, digest)
    doc = json.loads(store.read_bytes(digest))
    manifest_digest, manifest = digest, doc
    if "manifests" in doc:
        entries = doc["manifests"]
        if len(entries) == 1 and "platform" not in entries[0]:
            chosen = entries[0]
        else:
            ranked = sorted(entries, key=lambda m: -_matches(m.get("platform", {}), platform))
            if not ranked or not _matches(ranked[0].get("platform", {}), platform):
                raise BuildError(f"OCI layout {layout}: {digest} has no image for {platform}")
            chosen = ranked[0]
        manifest_digest = chosen["digest"]
        _import(store, layout, manifest_digest)
        manifest = json.loads(store.read_bytes(manifest_digest))
    config_digest = manifest["config"]["digest"]
    _import(store, layout, config_digest)
    config = json.loads(store.read_bytes(config_digest))
    layers = [Descriptor.from_json(layer) for layer in manifest.get("layers", [])]
    for layer in layers:
        _import(store, layout, layer.digest)
    return ResolvedImage(parse_reference(f"{ref_name}@{digest}"), digest, manifest_digest, manifest, config,
                         config_digest, layers, manifest.get("mediaType", ""))


class OCILayoutSource:
    def __init__(self, worker: Worker, op: pb.Op) -> None:
        self.worker = worker
        self.op = op
        ref = op.source.identifier.removeprefix("oci-layout://")
        self.name, _, self.digest = ref.partition("@")
        self.store_id = op.source.attrs.get("oci.store", "")
        if not self.digest or not self.store_id:
            raise BuildError(f"invalid oci-layout source {op.source.identifier!r}: needs NAME@DIGEST and oci.store")
        self.platform = Platform.from_pb(op.platform) if op.HasField("platform") else worker.platform
        self.resolved: ResolvedImage | None = None

    async def cache_map(self, ctx: OpContext, inputs: Sequence[object]) -> CacheMap:
        import asyncio

        def read() -> ResolvedImage:  # in a thread: the layout may first come over the client's session
            layout = layout_dir(ctx.job, self.store_id)
            return resolve_layout(self.worker.content, layout, self.name, self.digest, self.platform)

        resolved = await asyncio.to_thread(read)
        self.resolved = resolved
        chain = chain_ids(resolved.config.get("rootfs", {}).get("diff_ids", []))
        identity = chain[-1] if chain else "scratch"
        return CacheMap("sha256:" + hashlib.sha256(f"image:{identity}".encode()).hexdigest())

    async def execute(self, ctx: OpContext, inputs: Sequence[object]) -> list[Snapshot]:
        assert self.resolved is not None
        return [await self.worker.unpack_image(self.resolved, ctx)]
