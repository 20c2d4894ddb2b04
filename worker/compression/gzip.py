"""gzip through the fastest path present: the isal module (threaded), Debian's igzip, zlib.

isal has levels 0-3; BuildKit's 0-9 scale maps onto it as 0 -> 0, 1-3 -> 1, 4-6 -> 2,
7-9 -> 3. The igzip command takes the same levels. zlib honours the exact level.
"""
from __future__ import annotations

import gzip as zlib_gzip
import os
import shutil
import subprocess
import threading
from typing import BinaryIO

DEFAULT_LEVEL = 6  # gzip.DefaultCompression in Go's compress/gzip


def isal_level(level: int) -> int:
    if level <= 0:
        return 0
    return min(3, (level + 2) // 3)


def gzip_stream(src: BinaryIO, dst: BinaryIO, level: int | None, *, threads: int = 0) -> None:
    level = DEFAULT_LEVEL if level is None else level
    threads = threads or min(4, os.cpu_count() or 1)
    try:
        from isal import igzip_threaded

        with igzip_threaded.open(dst, "wb", compresslevel=isal_level(level), threads=threads,
                                 block_size=1 << 20) as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return
    except ImportError:
        pass
    igzip = shutil.which("igzip")
    if igzip is not None:
        _through_command([igzip, "-c", f"-{isal_level(level)}", f"-T{threads}", "-n"], src, dst)
        return
    with zlib_gzip.GzipFile(fileobj=dst, mode="wb", compresslevel=level, mtime=0) as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _through_command(argv: list[str], src: BinaryIO, dst: BinaryIO) -> None:
    """Pipe src through a filter command into dst (both may be Python-level streams)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:
        try:
            shutil.copyfileobj(src, proc.stdin, 1 << 20)
        finally:
            proc.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    shutil.copyfileobj(proc.stdout, dst, 1 << 20)
    feeder.join()
    if proc.wait() != 0:
        raise OSError(f"{argv[0]} failed with exit code {proc.returncode}")
