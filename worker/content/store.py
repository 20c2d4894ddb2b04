"""The content store: blobs by digest, written to a temporary name, verified, then renamed.

A reader never sees a partial blob: the rename is the commit. A crash leaves at most files in
`ingest/`, which `check()` removes.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.faults import BLOB_WRITTEN_NOT_RENAMED, crashpoint


class ContentError(BuildError):
    pass


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    platform: dict | None = field(default=None, hash=False)
    urls: tuple[str, ...] = ()

    def to_json(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.platform:
            out["platform"] = self.platform
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Descriptor":
        return cls(data.get("mediaType", ""), data["digest"], int(data["size"]), dict(data.get("annotations") or {}),
                   data.get("platform"), tuple(data.get("urls") or ()))


@dataclass
class CheckReport:
    removed_partial: int = 0
    corrupt: list[str] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        out = [f"removed corrupt blob {d}" for d in self.corrupt]
        if self.removed_partial:
            out.append(f"removed {self.removed_partial} unfinished downloads")
        return out


class ContentWriter:
    def __init__(self, store: "ContentStore", expected: str | None, size: int | None) -> None:
        self.store = store
        self.expected = expected
        self.expected_size = size
        self.path = store.ingest / secrets.token_hex(8)
        self._file = open(self.path, "wb")
        self._hash = hashlib.sha256()
        self.written = 0
        self.digest: str | None = None

    def write(self, data: bytes | memoryview) -> int:
        self._file.write(data)
        self._hash.update(data)
        self.written += len(data)
        return len(data)

    def commit(self) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = "sha256:" + self._hash.hexdigest()
        if self.expected is not None and digest != self.expected:
            self.abort()
            raise ContentError(f"digest mismatch: expected {self.expected}, got {digest}")
        if self.expected_size is not None and self.written != self.expected_size:
            self.abort()
            raise ContentError(f"size mismatch for {digest}: expected {self.expected_size}, got {self.written}")
        crashpoint(BLOB_WRITTEN_NOT_RENAMED)
        target = self.store.path(digest)
        os.replace(self.path, target)
        self.digest = digest
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "ContentWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.digest is None:
            self.abort()


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.ingest = root / "ingest"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.ingest.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
            raise ContentError(f"invalid digest {digest!r}")
        return self.blobs / hexdigest

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def writer(self, *, expected: str | None = None, size: int | None = None) -> ContentWriter:
        return ContentWriter(self, expected, size)

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected is not None and digest != expected:
            raise ContentError(f"digest mismatch: expected {expected}, got {digest}")
        if self.has(digest):
            return digest
        with self.writer(expected=digest) as w:
            w.write(data)
            return w.commit()

    def read_bytes(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise ContentError(f"content {digest} not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise ContentError(f"content {digest} not found") from None

    def delete(self, digest: str) -> None:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def walk(self) -> Iterator[tuple[str, int]]:
        for entry in os.scandir(self.blobs):
            yield "sha256:" + entry.name, entry.stat().st_size

    def check(self, *, repair: bool = True, verify: bool = False) -> CheckReport:
        """Drop unfinished ingests; with verify, re-hash every blob and drop corrupt ones."""
        report = CheckReport()
        for entry in os.scandir(self.ingest):
            if repair:
                os.unlink(entry.path)
            report.removed_partial += 1
        if verify:
            for digest, _ in list(self.walk()):
                h = hashlib.sha256()
                with open(self.path(digest), "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                if "sha256:" + h.hexdigest() != digest:
                    report.corrupt.append(digest)
                    if repair:
                        self.delete(digest)
        return report
