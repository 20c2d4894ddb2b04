"""OCI image layout tarballs (`type=oci`) and docker-load tarballs (`type=docker`).

Both stream blobs straight from the content store in a stable order, so the same image gives
the same tar bytes.
"""
from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from typing import BinaryIO

from pybuildkit.worker.content.store import ContentStore, Descriptor

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def reachable(store: ContentStore, root: Descriptor) -> list[Descriptor]:
    """Every blob reachable from an index or manifest, children before parents."""
    seen: dict[str, Descriptor] = {}

    def visit(desc: Descriptor) -> None:
        if desc.digest in seen:
            return
        if "manifest" in desc.media_type or "index" in desc.media_type:
            doc = json.loads(store.read_bytes(desc.digest))
            for child in doc.get("manifests", []):
                visit(Descriptor.from_json(child))
            if "config" in doc:
                visit(Descriptor.from_json(doc["config"]))
            for layer in doc.get("layers", []):
                visit(Descriptor.from_json(layer))
        seen[desc.digest] = desc

    visit(root)
    return list(seen.values())


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o444
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _add_blobs(tar: tarfile.TarFile, store: ContentStore, blobs: Iterable[Descriptor]) -> None:
    for desc in sorted(blobs, key=lambda d: d.digest):
        algo, hexdigest = desc.digest.split(":", 1)
        info = tarfile.TarInfo(f"blobs/{algo}/{hexdigest}")
        info.size = store.size(desc.digest)
        info.mode = 0o444
        info.mtime = 0
        with store.open(desc.digest) as handle:
            tar.addfile(info, handle)


def write_oci_tar(out: BinaryIO, store: ContentStore, root: Descriptor, names: Sequence[str]) -> None:
    index_entry = root.to_json()
    annotations = {}
    if names:
        annotations["io.containerd.image.name"] = names[0]
        tag = names[0].rsplit(":", 1)[1] if ":" in names[0].rsplit("/", 1)[-1] else "latest"
        annotations["org.opencontainers.image.ref.name"] = tag
    if annotations:
        index_entry["annotations"] = {**index_entry.get("annotations", {}), **annotations}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [index_entry]}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", OCI_LAYOUT)
        _add_bytes(tar, "index.json", json.dumps(index, separators=(",", ":")).encode())
        _add_blobs(tar, store, reachable(store, root))


def write_docker_tar(out: BinaryIO, store: ContentStore, manifest_desc: Descriptor, names: Sequence[str]) -> None:
    """docker load format: manifest.json + repositories, blobs laid out as in an OCI layout."""
    doc = json.loads(store.read_bytes(manifest_desc.digest))
    config = Descriptor.from_json(doc["config"])
    layers = [Descriptor.from_json(layer) for layer in doc["layers"]]
    repo_tags = [_familiar(n) for n in names]
    entry = {"Config": "blobs/sha256/" + config.digest.split(":", 1)[1],
             "RepoTags": repo_tags,
             "Layers": ["blobs/sha256/" + layer.digest.split(":", 1)[1] for layer in layers]}
    repositories: dict[str, dict[str, str]] = {}
    if layers:
        top = layers[-1].digest.split(":", 1)[1]
        for tag in repo_tags:
            repo, _, version = tag.rpartition(":")
            repositories.setdefault(repo, {})[version] = top
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{**manifest_desc.to_json(),
                            **({"annotations": {"io.containerd.image.name": names[0]}} if names else {})}]}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", OCI_LAYOUT)
        _add_bytes(tar, "index.json", json.dumps(index, separators=(",", ":")).encode())
        _add_blobs(tar, store, reachable(store, manifest_desc))
        _add_bytes(tar, "manifest.json", json.dumps([entry], separators=(",", ":")).encode())
        if repositories:
            _add_bytes(tar, "repositories", json.dumps(repositories, separators=(",", ":")).encode())


def _familiar(name: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"
