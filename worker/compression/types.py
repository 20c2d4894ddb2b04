"""Compression kinds and what a compressed layer blob records about itself."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Compression(StrEnum):
    UNCOMPRESSED = "uncompressed"
    GZIP = "gzip"
    ZSTD = "zstd"
    ESTARGZ = "estargz"


@dataclass(frozen=True)
class CompressedBlob:
    digest: str
    size: int
    diff_id: str
    uncompressed_size: int
    media_type_oci: str
    media_type_docker: str | None
    annotations: dict[str, str] = field(default_factory=dict)
