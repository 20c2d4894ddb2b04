"""zstd with the zstandard module, multi-threaded; levels -7..22 (0 means the library default, 3).

Multi-threaded zstd output does not depend on the number of worker threads, only on the level
and whether threading is on at all, so equal input gives equal bytes at any fixed setting.
"""
from __future__ import annotations

import shutil
from typing import BinaryIO

import zstandard

from pybuildkit.worker.compression.gzip import default_threads
from pybuildkit.worker.compression.types import CompressionError

DEFAULT_LEVEL = 3
COPY_CHUNK = 1 << 20


def zstd_stream(src: BinaryIO, dst: BinaryIO, level: int | None, *, threads: int = 0) -> None:
    level = DEFAULT_LEVEL if not level else level
    if not -7 <= level <= 22:
        raise CompressionError(f"zstd compression level {level} is out of range (0-22)")
    compressor = zstandard.ZstdCompressor(level=level, threads=default_threads(threads), write_checksum=True)
    with compressor.stream_writer(dst, closefd=False) as out:  # type: ignore[arg-type]
        shutil.copyfileobj(src, out, COPY_CHUNK)
