"""eStargz: a gzip layer that lazy-pulling snapshotters can read file by file.

Layout (BUILDKIT-FACTS §6, stargz-snapshotter's writer): a landmark entry first
(`.no.prefetch.landmark`, or the prioritized files then `.prefetch.landmark`), then the input's
entries. A new gzip member starts at every chunk of file content (4 MiB by default) and before a
landmark; headers and padding ride in whatever member is open. Then one member holds the TOC
(`stargz.index.json`) and the tar end, and a 51-byte footer points at it. Decompressed, the blob
is one valid tar stream, so any gzip reader takes it as an ordinary layer.

Input headers are copied byte for byte (PAX and GNU extensions survive). Members are compressed
in a thread pool and written in order, so the output does not depend on the number of threads.
The default level is BuildKit's for eStargz: 9 (gzip.BestCompression), mapped as gzip's levels.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import struct
import tarfile
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pybuildkit.worker.compression.estargz_verify import EstargzReport, verify_estargz
from pybuildkit.worker.compression.gzip import default_threads, gzip_member
from pybuildkit.worker.compression.hashio import HashingWriter
from pybuildkit.worker.compression.types import (TOC_DIGEST_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION,
                                                 CompressedBlob, Compression, CompressionError, media_types)
from pybuildkit.worker.layer.tarwriter import REGTYPE, TarEntry, header_bytes

__all__ = ["EstargzReport", "footer", "verify_estargz", "write_estargz"]

TOC_NAME = "stargz.index.json"
FOOTER_SIZE = 51
PREFETCH_LANDMARK = ".prefetch.landmark"
NO_PREFETCH_LANDMARK = ".no.prefetch.landmark"
LANDMARK_CONTENT = b"\x0f"
CHUNK_SIZE = 4 << 20
DEFAULT_LEVEL = 9

_TYPES = {tarfile.REGTYPE: "reg", tarfile.AREGTYPE: "reg", tarfile.CONTTYPE: "reg", tarfile.LNKTYPE: "hardlink",
          tarfile.SYMTYPE: "symlink", tarfile.DIRTYPE: "dir", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
          tarfile.FIFOTYPE: "fifo"}


def footer(toc_offset: int) -> bytes:
    """An empty gzip member (stored deflate) whose FEXTRA field carries the TOC offset."""
    payload = b"%016xSTARGZ" % toc_offset
    extra = b"SG" + struct.pack("<H", len(payload)) + payload
    header = b"\x1f\x8b\x08\x04" + b"\x00\x00\x00\x00" + b"\x00\xff" + struct.pack("<H", len(extra)) + extra
    return header + b"\x01\x00\x00\xff\xff" + struct.pack("<II", 0, 0)


def clean_entry_name(name: str) -> str:
    return os.path.normpath("/" + name).lstrip("/") if name not in ("", ".", "./", "/") else ""


@dataclass
class _Entry:
    info: tarfile.TarInfo | None  # None: the landmark
    header: bytes
    name: str  # cleaned


def _scan(tar_path: Path) -> list[_Entry]:
    entries: list[_Entry] = []
    with open(tar_path, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
        for info in tar:
            name = clean_entry_name(info.name)
            if name in (TOC_NAME, PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK):
                continue
            if info.type not in _TYPES or info.issparse():
                raise CompressionError(f"{info.name}: tar entry type {info.type!r} cannot go into an eStargz layer")
            raw.seek(info.offset)
            entries.append(_Entry(info, raw.read(info.offset_data - info.offset), name))
    return entries


def _landmark(name: str) -> _Entry:
    return _Entry(None, header_bytes(TarEntry(name=name, type=REGTYPE, mode=0, size=1)), name)


def _order(entries: list[_Entry], prioritized: Sequence[str]) -> list[_Entry]:
    """Prioritized files (with their parents and hardlink targets) first, then the landmark."""
    if not prioritized:
        return [_landmark(NO_PREFETCH_LANDMARK), *entries]
    by_name = {e.name: e for e in entries}
    moved: list[_Entry] = []
    taken: set[str] = set()

    def move(name: str) -> None:
        if not name or name in taken:
            return
        entry = by_name.get(name)
        if entry is None:
            raise CompressionError(f"prioritized file {name!r} is not in the layer")
        move(name.rpartition("/")[0] if name.rpartition("/")[0] in by_name else "")
        if entry.info is not None and entry.info.islnk():
            move(clean_entry_name(entry.info.linkname))
        if name not in taken:
            taken.add(name)
            moved.append(entry)

    for wanted in prioritized:
        move(clean_entry_name(wanted))
    rest = [e for e in entries if e.name not in taken]
    return [*moved, _landmark(PREFETCH_LANDMARK), *rest]


def _modtime(mtime: float) -> str | None:
    if not mtime:
        return None
    return dt.datetime.fromtimestamp(round(mtime), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _toc_entry(entry: _Entry, names: dict[str, dict[int, str]]) -> dict[str, Any]:
    """Fields in the order of stargz-snapshotter's TOCEntry, empty ones left out (omitempty)."""
    info = entry.info
    if info is None:
        return {"name": entry.name, "type": "reg", "size": 1}
    kind = _TYPES[info.type]
    out: dict[str, Any] = {"name": entry.name, "type": kind}
    if kind == "reg" and info.size:
        out["size"] = info.size
    if (modtime := _modtime(info.mtime)) is not None:
        out["modtime"] = modtime
    if info.linkname and kind in ("hardlink", "symlink"):
        out["linkName"] = info.linkname
    for key, value in (("mode", info.mode), ("uid", info.uid), ("gid", info.gid)):
        if value:
            out[key] = value
    for key, ident, label in (("userName", info.uid, info.uname), ("groupName", info.gid, info.gname)):
        seen = names.setdefault(key, {})
        if label and seen.get(ident) != label:
            seen[ident] = label
            out[key] = label
    if kind in ("char", "block"):
        if info.devmajor:
            out["devMajor"] = info.devmajor
        if info.devminor:
            out["devMinor"] = info.devminor
    xattrs = {k[len("SCHILY.xattr."):]: base64.b64encode(v.encode("utf-8", "surrogateescape")).decode()
              for k, v in sorted(info.pax_headers.items()) if k.startswith("SCHILY.xattr.")}
    if xattrs:
        out["xattrs"] = xattrs
    return out


class _MemberWriter:
    """Groups the uncompressed stream into gzip members, compresses them in parallel, and
    writes them in order; TOC entries wait for their member's compressed offset."""

    def __init__(self, dst: HashingWriter, level: int, threads: int) -> None:
        self.dst = dst
        self.level = level
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="estargz")
        self.window = threads * 3
        self.pending: deque[tuple[Future[bytes], list[dict[str, Any]]]] = deque()
        self.current: list[bytes | memoryview] = []
        self.current_waiters: list[dict[str, Any]] = []
        self.diff = hashlib.sha256()
        self.uncompressed = 0

    def append(self, data: bytes | memoryview) -> None:
        if len(data):
            self.current.append(data)
            self.diff.update(data)
            self.uncompressed += len(data)

    def start_member(self, *waiters: dict[str, Any]) -> None:
        """Close the open member; the next bytes begin a new one whose offset `waiters` get."""
        self._close_member()
        self.current_waiters = list(waiters)

    def _close_member(self) -> None:
        if not self.current:
            if self.current_waiters:
                raise AssertionError("an entry waits for an empty member")
            return
        data = self.current[0] if len(self.current) == 1 else b"".join(self.current)
        self.pending.append((self.pool.submit(gzip_member, data, self.level), self.current_waiters))
        self.current, self.current_waiters = [], []
        while len(self.pending) > self.window:
            self._drain_one()

    def _drain_one(self) -> None:
        future, waiters = self.pending.popleft()
        compressed = future.result()
        for toc_entry in waiters:
            toc_entry["offset"] = self.dst.count
        self.dst.write(compressed)

    def flush(self) -> int:
        """Write every member so far; returns the compressed offset where the next one starts."""
        self._close_member()
        while self.pending:
            self._drain_one()
        return self.dst.count

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def write_estargz(tar_path: Path, out: BinaryIO, level: int | None = None, *, chunk_size: int = CHUNK_SIZE,
                  prioritized: Sequence[str] = (), threads: int = 0) -> CompressedBlob:
    """Write the eStargz blob of the uncompressed tar at `tar_path` to `out`."""
    level = DEFAULT_LEVEL if level is None else level
    if not 0 <= level <= 9:
        raise CompressionError(f"estargz compression level {level} is out of range (0-9)")
    if chunk_size <= 0:
        raise CompressionError(f"estargz chunk size must be positive, not {chunk_size}")
    entries = _order(_scan(Path(tar_path)), prioritized)
    dst = HashingWriter(out)
    members = _MemberWriter(dst, level, default_threads(threads))
    toc: list[dict[str, Any]] = []
    names: dict[str, dict[int, str]] = {}
    try:
        with open(tar_path, "rb") as raw:
            for entry in entries:
                _write_entry(members, entry, _toc_entry(entry, names), raw.fileno(), toc, chunk_size)
        toc_offset = members.flush()
        toc_json = json.dumps({"version": 1, "entries": [_ordered(e) for e in toc]}, indent="\t",
                              ensure_ascii=False).encode()
        members.append(header_bytes(TarEntry(name=TOC_NAME, type=REGTYPE, mode=0, size=len(toc_json))) + toc_json
                       + b"\0" * (-len(toc_json) % 512) + b"\0" * 1024)
        members.flush()
    finally:
        members.close()
    dst.write(footer(toc_offset))
    oci, docker = media_types(Compression.ESTARGZ)
    annotations = {TOC_DIGEST_ANNOTATION: "sha256:" + hashlib.sha256(toc_json).hexdigest(),
                   UNCOMPRESSED_SIZE_ANNOTATION: str(members.uncompressed)}
    return CompressedBlob(dst.digest, dst.count, "sha256:" + members.diff.hexdigest(), members.uncompressed,
                          oci, docker, annotations)


_KEY_ORDER = ("name", "type", "size", "modtime", "linkName", "mode", "uid", "gid", "userName", "groupName",
              "offset", "devMajor", "devMinor", "xattrs", "digest", "chunkOffset", "chunkSize", "chunkDigest")


def _ordered(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in _KEY_ORDER if key in entry}


def _read_at(fd: int, offset: int, size: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise CompressionError(f"layer tar ended early: wanted {size} bytes at offset {offset}")
    return data


def _write_entry(members: _MemberWriter, entry: _Entry, toc_entry: dict[str, Any], fd: int,
                 toc: list[dict[str, Any]], chunk_size: int) -> None:
    if entry.info is None:  # landmarks open their own member
        members.start_member()
        size, origin = 1, -1
    else:
        size = entry.info.size if toc_entry["type"] == "reg" else 0
        origin = entry.info.offset_data
    members.append(entry.header)
    if toc_entry["type"] == "reg" and not size:
        toc_entry["digest"] = "sha256:" + hashlib.sha256(b"").hexdigest()
    if not size:
        toc.append(toc_entry)
        return
    whole = hashlib.sha256() if size > chunk_size else None
    current = toc_entry
    for start in range(0, size, chunk_size):
        chunk = LANDMARK_CONTENT if origin < 0 else _read_at(fd, origin + start, min(chunk_size, size - start))
        if start:
            current["chunkOffset"] = start
        if len(chunk) == chunk_size and size > chunk_size:
            current["chunkSize"] = chunk_size
        chunk_digest = hashlib.sha256(chunk)
        current["chunkDigest"] = "sha256:" + chunk_digest.hexdigest()
        if whole is not None:
            whole.update(chunk)
        members.start_member(current)
        members.append(chunk)
        toc.append(current)
        current = {"name": toc_entry["name"], "type": "chunk"}
    toc_entry["digest"] = "sha256:" + (whole or chunk_digest).hexdigest()
    members.append(b"\0" * (-size % 512))
