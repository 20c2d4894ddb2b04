"""Recognising a blob's compression from its first bytes, and reading it back uncompressed."""
from __future__ import annotations

import gzip
import io
from typing import BinaryIO

import zstandard

from pybuildkit.worker.compression.types import Compression

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def detect(prefix: bytes) -> Compression:
    if prefix.startswith(GZIP_MAGIC):
        return Compression.GZIP
    if prefix.startswith(ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.UNCOMPRESSED


def decompress_reader(f: BinaryIO, media_type_or_magic: str | None = None) -> BinaryIO:
    """A stream of the uncompressed tar, whatever the blob's compression (by magic bytes)."""
    buffered = f if isinstance(f, io.BufferedReader) else io.BufferedReader(f)  # type: ignore[arg-type]
    kind = detect(buffered.peek(4)[:4])
    if kind == Compression.GZIP:
        try:
            from isal import igzip

            return igzip.IGzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
        except ImportError:
            return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if kind == Compression.ZSTD:
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)  # type: ignore[return-value]
    return buffered
