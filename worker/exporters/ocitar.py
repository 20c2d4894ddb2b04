"""OCI image layout tarballs (`type=oci`) and docker-load tarballs (`type=docker`).

Both stream blobs straight from the content store in a stable order, so the same image gives
the same tar bytes.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from pybuildkit.worker.content.store import ContentStore, Descriptor

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
#: what a tarball copies from a file at once (tarfile's default, 16 KiB, makes a 300 MB export
#: tens of thousands of Python-level writes)
TAR_BUFFER = 1 << 20


class _Position:
    """`out` with the tell() tarfile's plain "w" mode asks for once, at its start: a pipe or the
    session's writer has none, and the stream mode ("w|") that needs none joins and slices its
    buffer as immutable bytes, ~0.2 s of copying in a 160 MB export. The bytes written are the
    same in both modes."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._written = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written


def stream_tar(out: BinaryIO) -> tarfile.TarFile:
    """A PAX tarball written to `out` in order, never seeking, file contents TAR_BUFFER at a time."""
    tar = tarfile.open(fileobj=_Position(out), mode="w", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]
    tar.copybufsize = TAR_BUFFER  # type: ignore[attr-defined]  # a TarFile attribute typeshed lacks
    return tar


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


def _oci_index(root: Descriptor, names: Sequence[str]) -> bytes:
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
    return json.dumps(index, separators=(",", ":")).encode()


def write_oci_tar(out: BinaryIO, store: ContentStore, root: Descriptor, names: Sequence[str]) -> None:
    with stream_tar(out) as tar:
        _add_bytes(tar, "oci-layout", OCI_LAYOUT)
        _add_bytes(tar, "index.json", _oci_index(root, names))
        _add_blobs(tar, store, reachable(store, root))


def write_oci_layout(dest: Path, store: ContentStore, root: Descriptor, names: Sequence[str]) -> None:
    """`tar=false`: the same entries as the tarball, as an OCI image layout directory. Blobs
    already there are kept (a layout may collect several images); index.json is replaced."""
    dest.mkdir(parents=True, exist_ok=True)
    for desc in reachable(store, root):
        algo, hexdigest = desc.digest.split(":", 1)
        target = dest / "blobs" / algo / hexdigest
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(hexdigest + ".tmp")
        with store.open(desc.digest) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, target)
    for name, data in (("oci-layout", OCI_LAYOUT), ("index.json", _oci_index(root, names))):
        tmp = dest / (name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest / name)


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
    with stream_tar(out) as tar:
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
