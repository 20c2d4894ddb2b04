"""gzip through the fastest path present: the isal module (threaded), Debian's igzip, zlib.

ISA-L has four levels (0-3); BuildKit's 0-9 scale maps onto them as 0 -> 0, 1-3 -> 1,
4-6 -> 2, 7-9 -> 3, so the default (Go's gzip.DefaultCompression, 6) becomes isal 2, which
compresses W6's data to the same ratio as zlib's 6 at 25 times the speed. isal's level 0 still
compresses (Huffman only); only zlib's level 0 stores. zlib, the slow last resort, honours the
exact level. Every path writes mtime 0 and no file name, so equal input gives equal bytes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import zlib
from enum import StrEnum
from typing import BinaryIO

from pybuildkit.worker.compression.types import CompressionError

DEFAULT_LEVEL = 6  # gzip.DefaultCompression in Go's compress/gzip
COPY_CHUNK = 1 << 20
ISAL_BLOCK = 1 << 20


class GzipBackend(StrEnum):
    ISAL = "isal"
    IGZIP = "igzip"
    ZLIB = "zlib"


def isal_level(level: int) -> int:
    if level <= 0:
        return 0
    return min(3, (level + 2) // 3)


def default_threads(threads: int) -> int:
    return threads if threads > 0 else max(1, min(4, os.cpu_count() or 1))


def gzip_backend() -> GzipBackend:
    """The fastest gzip implementation on this machine."""
    try:
        import isal.igzip_threaded  # noqa: F401
        return GzipBackend.ISAL
    except ImportError:
        pass
    return GzipBackend.IGZIP if shutil.which("igzip") else GzipBackend.ZLIB


def gzip_stream(src: BinaryIO, dst: BinaryIO, level: int | None, *, threads: int = 0,
                backend: GzipBackend | None = None) -> None:
    """Compress all of src into dst as one gzip member."""
    level = DEFAULT_LEVEL if level is None else level
    if not 0 <= level <= 9:
        raise CompressionError(f"gzip compression level {level} is out of range (0-9)")
    backend = backend or gzip_backend()
    if backend == GzipBackend.ISAL:
        from isal import igzip_threaded

        with igzip_threaded.open(dst, "wb", compresslevel=isal_level(level), threads=default_threads(threads),
                                 block_size=ISAL_BLOCK) as out:
            shutil.copyfileobj(src, out, COPY_CHUNK)
    elif backend == GzipBackend.IGZIP:
        igzip = shutil.which("igzip") or "igzip"
        filter_through_command([igzip, "-c", "-n", f"-{isal_level(level)}", f"-T{default_threads(threads)}"],
                               src, dst)
    else:
        with zlib_gzip_writer(dst, level) as out:
            shutil.copyfileobj(src, out, COPY_CHUNK)


def zlib_gzip_writer(dst: BinaryIO, level: int) -> "_ZlibGzipWriter":
    return _ZlibGzipWriter(dst, level)


class _ZlibGzipWriter:
    """zlib's own gzip wrapper (wbits 31): header with mtime 0 and no name, unlike GzipFile,
    which would record the output file's name."""

    def __init__(self, dst: BinaryIO, level: int) -> None:
        self.dst = dst
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, 31)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.dst.write(self.compressor.compress(data))
        return memoryview(data).nbytes

    def __enter__(self) -> "_ZlibGzipWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.dst.write(self.compressor.flush())


def gzip_member(data: bytes | memoryview, level: int, *, backend: GzipBackend | None = None) -> bytes:
    """One complete gzip member of `data` (eStargz writes one per entry and chunk)."""
    if (backend or gzip_backend()) == GzipBackend.ISAL:
        from isal import igzip

        return igzip.compress(data, isal_level(level), mtime=0)
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def filter_through_command(argv: list[str], src: BinaryIO, dst: BinaryIO) -> None:
    """Pipe src through a long-running filter command into dst.

    Streamed, so not `process.run` (which buffers everything): a feeder thread writes src into
    the command while this thread copies its output to dst. When src is a real file the
    command reads it directly instead.
    """
    direct_fd = _real_file_fd(src)
    try:
        proc = subprocess.Popen(argv, stdin=direct_fd if direct_fd is not None else subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError as exc:
        raise CompressionError(f"{argv[0]}: command not found", hint="install the isal package") from exc
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[BaseException] = []
    feeder = None
    if direct_fd is None:
        stdin = proc.stdin
        assert stdin is not None

        def feed() -> None:
            try:
                shutil.copyfileobj(src, stdin, COPY_CHUNK)
            except BaseException as exc:  # reported below, after the command ends
                errors.append(exc)
            finally:
                stdin.close()

        feeder = threading.Thread(target=feed, name="gzip-feed", daemon=True)
        feeder.start()
    stderr_tail: list[bytes] = []
    drain = threading.Thread(target=lambda: stderr_tail.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    drain.start()
    try:
        shutil.copyfileobj(proc.stdout, dst, COPY_CHUNK)
    finally:
        proc.stdout.close()
        if feeder is not None:
            feeder.join()
        returncode = proc.wait()
        drain.join()
    if errors:
        raise errors[0]
    if returncode != 0:
        message = b"".join(stderr_tail).decode(errors="replace").strip()
        raise CompressionError(f"{argv[0]} failed with exit code {returncode}: {message}")


def _real_file_fd(src: BinaryIO) -> int | None:
    """The fd of src when the command can read it directly (a regular file, read from its start)."""
    try:
        fd = src.fileno()
        position = src.tell()
    except (AttributeError, OSError, ValueError):
        return None
    import stat

    if not stat.S_ISREG(os.fstat(fd).st_mode) or os.lseek(fd, 0, os.SEEK_CUR) != position:
        return None
    return fd
