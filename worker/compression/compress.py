"""Compressing a layer tar into a blob while hashing both sides in the same pass."""
from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path
from typing import BinaryIO

from pybuildkit.worker.compression.gzip import GzipBackend, gzip_backend, gzip_stream
from pybuildkit.worker.compression.hashio import HashingReader, HashingWriter
from pybuildkit.worker.compression.types import CompressedBlob, Compression, media_types
from pybuildkit.worker.compression.zstd import zstd_stream

COPY_CHUNK = 1 << 20


def compress_tar(tar_path: Path, out: BinaryIO, compression: Compression, level: int | None = None,
                 *, threads: int = 0) -> CompressedBlob:
    """Write the blob of the uncompressed tar at `tar_path` to `out`.

    Levels: gzip and estargz 0-9 (default 6 for gzip, 9 for estargz, as BuildKit), zstd 0-22
    (default 3); `threads` 0 means up to 4, by CPU count.
    """
    compression = Compression(compression)
    if compression == Compression.ESTARGZ:
        from pybuildkit.worker.compression.estargz import write_estargz

        return write_estargz(tar_path, out, level, threads=threads)
    dst = HashingWriter(out)
    with open(tar_path, "rb") as raw:
        if compression == Compression.GZIP and gzip_backend() == GzipBackend.IGZIP:
            diff_id, size = _gzip_via_command(tar_path, raw, dst, level, threads)
        else:
            src = HashingReader(raw)
            if compression == Compression.GZIP:
                gzip_stream(src, dst, level, threads=threads)  # type: ignore[arg-type]
            elif compression == Compression.ZSTD:
                zstd_stream(src, dst, level, threads=threads)  # type: ignore[arg-type]
            else:
                shutil.copyfileobj(src, dst, COPY_CHUNK)  # type: ignore[arg-type]
            diff_id, size = src.digest, src.count
    oci, docker = media_types(compression)
    return CompressedBlob(dst.digest, dst.count, diff_id, size, oci, docker, {})


def _gzip_via_command(tar_path: Path, raw: BinaryIO, dst: HashingWriter, level: int | None,
                      threads: int) -> tuple[str, int]:
    """igzip reads the file itself; the uncompressed digest is taken alongside, in a thread."""
    result: dict[str, object] = {}

    def hash_input() -> None:
        digest = hashlib.sha256()
        count = 0
        with open(tar_path, "rb", buffering=0) as again:
            buffer = bytearray(COPY_CHUNK)
            view = memoryview(buffer)
            while got := again.readinto(buffer):
                digest.update(view[:got])
                count += got
        result["digest"], result["count"] = "sha256:" + digest.hexdigest(), count

    hasher = threading.Thread(target=hash_input, name="diffid-hash", daemon=True)
    hasher.start()
    try:
        gzip_stream(raw, dst, level, threads=threads, backend=GzipBackend.IGZIP)  # type: ignore[arg-type]
    finally:
        hasher.join()
    return str(result["digest"]), int(result["count"])  # type: ignore[call-overload]
