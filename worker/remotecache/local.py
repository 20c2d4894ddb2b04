"""`type=local`: the cache as an OCI layout directory (`index.json`, `oci-layout`, `blobs/`)."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

from pybuildkit.solver.scheduler import Job
from pybuildkit.worker.content.store import Descriptor
from pybuildkit.worker.remotecache import common
from pybuildkit.worker.remotecache.format import CacheFormatError, CacheIndex
from pybuildkit.worker.remotecache.options import CacheExport, CacheImport

REF_NAME = "org.opencontainers.image.ref.name"


def _blob_path(root: Path, digest: str) -> Path:
    algorithm, _, hexpart = digest.partition(":")
    return root / "blobs" / algorithm / hexpart


def export(worker, spec: CacheExport, manifest: common.CacheManifest, job: Job, event) -> None:
    """Copy the blobs the directory lacks, then point index.json's `tag` at the new manifest
    (written to a temporary name and renamed, so a reader never sees half an index)."""
    root = Path(spec.dest)
    root.mkdir(parents=True, exist_ok=True)
    for desc in manifest.blobs + [manifest.root]:
        target = _blob_path(root, desc.digest)
        if target.exists():
            continue
        status = common.blob_status(job, event, f"writing {desc.digest}", desc.size)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(worker.content.path(desc.digest), tmp)
        os.replace(tmp, target)
        common.done(job, status)
    layout = root / "oci-layout"
    if not layout.exists():
        layout.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = root / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {
        "schemaVersion": 2, "mediaType": common.OCI_INDEX, "manifests": []}
    entries = [m for m in index.get("manifests", []) if (m.get("annotations") or {}).get(REF_NAME) != spec.tag]
    entry = Descriptor(manifest.root.media_type, manifest.root.digest, manifest.root.size, {REF_NAME: spec.tag})
    index["manifests"] = entries + [entry.to_json()]
    tmp = index_path.with_name("index.json.tmp")
    tmp.write_text(json.dumps(index, separators=(",", ":")))
    os.replace(tmp, index_path)


def _choose(spec: CacheImport, index: dict) -> dict:
    entries = index.get("manifests", [])
    if spec.digest:
        for entry in entries:
            if entry.get("digest") == spec.digest:
                return entry
        raise CacheFormatError(f"--import-cache type=local: no manifest {spec.digest} in {spec.src}")
    for entry in entries:
        if (entry.get("annotations") or {}).get(REF_NAME) == spec.tag:
            return entry
    raise CacheFormatError(f"--import-cache type=local: no tag {spec.tag!r} in {spec.src}",
                           hint="pass tag=... or digest=... of a cache exported there")


async def open_import(worker, spec: CacheImport, job: Job) -> tuple[CacheIndex, common.ImportedManifest, common.Fetch] | None:
    from pybuildkit.worker.registry.reference import parse_reference

    root = Path(spec.src)
    index_path = root / "index.json"
    if not index_path.exists():
        return None  # like upstream: a missing cache directory is a cold start, not an error
    entry = _choose(spec, json.loads(index_path.read_text()))
    doc = json.loads(_blob_path(root, entry["digest"]).read_bytes())
    imported = common.read_manifest(doc, lambda d: _blob_path(root, d.digest).read_bytes())

    async def fetch(desc: Descriptor, progress) -> None:
        source = _blob_path(root, desc.digest)
        if not source.exists():
            raise CacheFormatError(f"cache blob {desc.digest} is missing from {spec.src}")
        def copy() -> None:
            with worker.content.writer(expected=desc.digest) as writer, open(source, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    writer.write(chunk)
                writer.commit()

        await asyncio.to_thread(copy)
        progress(desc.size, desc.size)

    async def load(chain):
        return await common.load_chain(worker, job, spec.src, chain, imported.blobs, fetch,
                                       parse_reference("localhost/local-cache"))

    return CacheIndex(imported.config, load, name=spec.src), imported, fetch
