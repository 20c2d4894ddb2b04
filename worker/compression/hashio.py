"""File-like wrappers that hash and count what passes through, so a blob's digest and its
uncompressed digest come out of the same single pass that writes it."""
from __future__ import annotations

import hashlib
from typing import BinaryIO


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

    def readinto(self, buffer: bytearray | memoryview) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.hash.update(memoryview(buffer)[:n])
            self.count += n
        return n or 0

    def readable(self) -> bool:
        return True

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class HashingWriter:
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.raw.write(data)
        self.hash.update(data)
        size = memoryview(data).nbytes
        self.count += size
        return size

    def flush(self) -> None:
        flush = getattr(self.raw, "flush", None)
        if flush is not None:
            flush()

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.count

    @property
    def closed(self) -> bool:
        return False

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()
