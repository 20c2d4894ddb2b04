"""Recognising a blob's compression from its first bytes, and reading it back uncompressed.

The magic bytes decide, not the media type: registries hold layers whose media type says gzip
but whose bytes are plain tar, and Docker and containerd read those by their magic too.
"""
from __future__ import annotations

import gzip
import io
from typing import BinaryIO

import zstandard

from pybuildkit.worker.compression.types import Compression

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def detect(prefix: bytes) -> Compression:
    """gzip, zstd or uncompressed; eStargz is gzip on the wire, so it reports GZIP."""
    if prefix.startswith(GZIP_MAGIC):
        return Compression.GZIP
    if prefix.startswith(ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.UNCOMPRESSED


def decompress_reader(f: BinaryIO, media_type_or_magic: str | None = None) -> BinaryIO:
    """A stream of the uncompressed tar, whatever the blob's compression (decided by its magic
    bytes; `media_type_or_magic` is accepted for callers that have one and does not override)."""
    buffered = f if isinstance(f, io.BufferedReader) else io.BufferedReader(f, 1 << 20)  # type: ignore[arg-type,type-var]
    kind = detect(buffered.peek(4)[:4])
    if kind == Compression.GZIP:
        try:
            from isal import igzip

            return igzip.IGzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
        except ImportError:
            return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if kind == Compression.ZSTD:
        reader = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
        return io.BufferedReader(reader, 1 << 20)  # type: ignore[arg-type]
    return buffered
