"""Image config, manifest and index documents, in Docker or OCI media types."""
from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Sequence

from pybuildkit.solver.platforms import Platform
from pybuildkit.worker.content.store import Descriptor
from pybuildkit.worker.exporters.layers import LayerBlob
from pybuildkit.worker.exporters.options import Annotation

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def canonical_json(document: dict) -> bytes:
    """Stable bytes: the same document always hashes the same (reproducible images)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def timestamp(epoch: int | None) -> str:
    moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc) if epoch is not None else dt.datetime.now(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if epoch is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_config(base: dict | None, platform: Platform, layers: Sequence[LayerBlob], *,
                 epoch: int | None, base_layer_count: int | None = None) -> dict:
    """The final config: the frontend's config (or a bare one) with rootfs and history filled."""
    config = copy.deepcopy(base) if base else {}
    config.setdefault("architecture", platform.architecture)
    config.setdefault("os", platform.os)
    if platform.variant:
        config.setdefault("variant", platform.variant)
    config.setdefault("config", {})
    config["rootfs"] = {"type": "layers", "diff_ids": [blob.diff_id for blob in layers]}
    created = timestamp(epoch)
    history = list(config.get("history") or [])
    non_empty = sum(1 for h in history if not h.get("empty_layer"))
    while non_empty < len(layers):
        history.append({"created": created, "created_by": "pybuildkit", "comment": "buildkit.dockerfile.v0"})
        non_empty += 1
    if epoch is not None:
        for entry in history:
            entry["created"] = created
    config["history"] = history
    config["created"] = created if epoch is not None or "created" not in config else config["created"]
    return config


def manifest(config_desc: Descriptor, layers: Sequence[LayerBlob], *, oci: bool,
             annotations: dict[str, str]) -> dict:
    doc: dict = {"schemaVersion": 2, "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
                 "config": config_desc.to_json(),
                 "layers": [blob.for_manifest(oci).to_json() for blob in layers]}
    if annotations and oci:
        doc["annotations"] = dict(sorted(annotations.items()))
    return doc


def index(manifests: Sequence[Descriptor], *, oci: bool, annotations: dict[str, str]) -> dict:
    doc: dict = {"schemaVersion": 2, "mediaType": OCI_INDEX if oci else DOCKER_LIST,
                 "manifests": [d.to_json() for d in manifests]}
    if annotations and oci:
        doc["annotations"] = dict(sorted(annotations.items()))
    return doc


def annotations_for(all_annotations: Sequence[Annotation], target: str, platform: Platform | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for ann in all_annotations:
        if ann.target != target:
            continue
        if ann.platform is not None and (platform is None or ann.platform != platform):
            continue
        out[ann.key] = ann.value
    return out
