"""zstd with the zstandard module, multi-threaded; levels 0-22 (0 means the library default, 3)."""
from __future__ import annotations

import os
import shutil
from typing import BinaryIO

import zstandard

DEFAULT_LEVEL = 3


def zstd_stream(src: BinaryIO, dst: BinaryIO, level: int | None, *, threads: int = 0) -> None:
    level = DEFAULT_LEVEL if not level else level
    threads = threads or min(4, os.cpu_count() or 1)
    compressor = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
    with compressor.stream_writer(dst, closefd=False) as out:
        shutil.copyfileobj(src, out, 1 << 20)
