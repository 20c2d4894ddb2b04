"""Compressing a layer tar into a blob while hashing both sides in the same pass."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import BinaryIO

from pybuildkit.worker.compression.gzip import gzip_stream
from pybuildkit.worker.compression.types import CompressedBlob, Compression
from pybuildkit.worker.compression.zstd import zstd_stream

OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA = {
    Compression.UNCOMPRESSED: (OCI_TAR, "application/vnd.docker.image.rootfs.diff.tar"),
    Compression.GZIP: (OCI_TAR + "+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    Compression.ESTARGZ: (OCI_TAR + "+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip"),
    Compression.ZSTD: (OCI_TAR + "+zstd", "application/vnd.docker.image.rootfs.diff.tar.zstd"),
}


class HashingReader:
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        self.count += len(data)
        return data

    def readinto(self, buffer) -> int:  # lets shutil use its fast path
        n = self.raw.readinto(buffer)
        if n:
            self.hash.update(memoryview(buffer)[:n])
            self.count += n
        return n


class HashingWriter:
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data) -> int:
        self.raw.write(data)
        self.hash.update(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        flush = getattr(self.raw, "flush", None)
        if flush:
            flush()

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.count


def compress_tar(tar_path: Path, out: BinaryIO, compression: Compression, level: int | None = None,
                 *, threads: int = 0) -> CompressedBlob:
    dst = HashingWriter(out)
    annotations: dict[str, str] = {}
    if compression == Compression.ESTARGZ:
        from pybuildkit.worker.compression.estargz import write_estargz_stream

        diff_id, uncompressed, toc_digest = write_estargz_stream(tar_path, dst, level)
        annotations = {"containerd.io/snapshot/stargz/toc.digest": toc_digest,
                       "io.containers.estargz.uncompressed-size": str(uncompressed)}
    else:
        with open(tar_path, "rb") as raw:
            src = HashingReader(raw)
            if compression == Compression.GZIP:
                gzip_stream(src, dst, level, threads=threads)
            elif compression == Compression.ZSTD:
                zstd_stream(src, dst, level, threads=threads)
            else:
                shutil.copyfileobj(src, dst, 1 << 20)
            diff_id, uncompressed = "sha256:" + src.hash.hexdigest(), src.count
    oci, docker = MEDIA[compression]
    return CompressedBlob("sha256:" + dst.hash.hexdigest(), dst.count, diff_id, uncompressed, oci, docker,
                          annotations)
