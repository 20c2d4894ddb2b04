"""Compression kinds, their media types, and what a compressed layer blob records about itself."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pybuildkit.solver.errors import BuildError

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
TOC_DIGEST_ANNOTATION = "containerd.io/snapshot/stargz/toc.digest"
UNCOMPRESSED_SIZE_ANNOTATION = "io.containers.estargz.uncompressed-size"


class Compression(StrEnum):
    UNCOMPRESSED = "uncompressed"
    GZIP = "gzip"
    ZSTD = "zstd"
    ESTARGZ = "estargz"


class CompressionError(BuildError):
    pass


@dataclass(frozen=True)
class CompressedBlob:
    digest: str
    size: int
    diff_id: str
    uncompressed_size: int
    media_type_oci: str
    media_type_docker: str | None
    annotations: dict[str, str] = field(default_factory=dict)


def media_types(compression: Compression) -> tuple[str, str | None]:
    """(OCI media type, Docker media type) of a layer; eStargz is gzip to every reader."""
    if compression == Compression.UNCOMPRESSED:
        return OCI_LAYER, DOCKER_LAYER
    if compression == Compression.ZSTD:
        return OCI_LAYER + "+zstd", DOCKER_LAYER + ".zstd"
    return OCI_LAYER + "+gzip", DOCKER_LAYER + ".gzip"
