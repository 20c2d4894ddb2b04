"""Our eStargz checker: what a lazy-pulling reader relies on, checked without trusting the writer.

It parses the 51-byte footer as stargz-snapshotter does (a gzip header with an `SG` extra
field holding "%016xSTARGZ"), decompresses the TOC member found there, and then re-reads
every chunk from its recorded offset: its bytes must hash to chunkDigest, and the chunks of
each file together to the file's digest. Any defect raises EstargzError naming it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pybuildkit.worker.compression.types import CompressionError

TOC_NAME = "stargz.index.json"
FOOTER_SIZE = 51
LANDMARKS = (".prefetch.landmark", ".no.prefetch.landmark")
_FEED = 1 << 16


class EstargzError(CompressionError):
    pass


@dataclass(frozen=True)
class EstargzReport:
    toc_digest: str
    toc_offset: int
    entries: int
    chunks_verified: int
    files_verified: int
    landmark: str | None


def parse_footer(foot: bytes) -> int:
    """The TOC offset recorded in an eStargz footer."""
    if len(foot) != FOOTER_SIZE:
        raise EstargzError(f"footer is {len(foot)} bytes, not {FOOTER_SIZE}")
    if foot[:3] != b"\x1f\x8b\x08" or not foot[3] & 0x04:
        raise EstargzError("footer is not a gzip header with an extra field")
    xlen, = struct.unpack("<H", foot[10:12])
    sublen, = struct.unpack("<H", foot[14:16])
    if xlen != 26 or foot[12:14] != b"SG" or sublen != 22 or foot[32:38] != b"STARGZ":
        raise EstargzError("footer extra field is not SG/22 bytes/%016xSTARGZ")
    decompressor = zlib.decompressobj(31)
    if decompressor.decompress(foot) != b"" or not decompressor.eof or decompressor.unused_data:
        raise EstargzError("footer is not one empty gzip member")
    try:
        return int(foot[16:32].decode("ascii"), 16)
    except ValueError as exc:
        raise EstargzError(f"footer offset {foot[16:32]!r} is not hexadecimal") from exc


@dataclass(frozen=True)
class _Blob:
    fd: int
    end: int  # where the footer starts

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, max(0, min(size, self.end - offset)), offset)


def _inflate(blob: _Blob, offset: int, want: int | None) -> bytes:
    """Decompress from the gzip member at `offset`: `want` bytes, or the whole member."""
    if blob.read(offset, 2) != b"\x1f\x8b":
        raise EstargzError(f"no gzip member starts at offset {offset}")
    decompressor = zlib.decompressobj(31)
    parts: list[bytes] = []
    got = 0
    position = offset
    while not decompressor.eof and position < blob.end and (want is None or got < want):
        try:
            piece = decompressor.decompress(blob.read(position, _FEED))
        except zlib.error as exc:
            raise EstargzError(f"member at offset {offset} is corrupt: {exc}") from exc
        position += _FEED
        parts.append(piece)
        got += len(piece)
    data = b"".join(parts)
    if want is not None:
        if len(data) < want:
            raise EstargzError(f"member at offset {offset} holds {len(data)} bytes, not the {want} recorded")
        return data[:want]
    if not decompressor.eof:
        raise EstargzError(f"member at offset {offset} is truncated")
    return data


def _read_toc(blob: _Blob, toc_offset: int) -> bytes:
    member = _inflate(blob, toc_offset, None)
    with tarfile.open(fileobj=io.BytesIO(member), mode="r:") as tar:
        first = tar.next()
        if first is None or first.name != TOC_NAME:
            raise EstargzError(f"the member at the footer's offset does not start with {TOC_NAME}")
        handle = tar.extractfile(first)
        assert handle is not None
        return handle.read()


def _verify_chunks(blob: _Blob, entries: list[dict[str, Any]]) -> tuple[int, int]:
    sizes = {e["name"]: e.get("size", 0) for e in entries if e.get("type") == "reg"}
    chunks = files = 0
    whole: dict[str, Any] = {}
    digests: dict[str, str] = {}
    for entry in entries:
        if "chunkDigest" not in entry:
            continue
        name = entry["name"]
        if entry["type"] == "reg":
            whole[name] = hashlib.sha256()
            digests[name] = entry.get("digest", "")
        start = entry.get("chunkOffset", 0)
        length = entry.get("chunkSize") or sizes.get(name, 0) - start
        data = _inflate(blob, entry["offset"], length)
        if "sha256:" + hashlib.sha256(data).hexdigest() != entry["chunkDigest"]:
            raise EstargzError(f"{name}: chunk at offset {entry['offset']} does not match its chunkDigest")
        if name in whole:
            whole[name].update(data)
        chunks += 1
        if start + length == sizes.get(name):
            if "sha256:" + whole.pop(name).hexdigest() != digests[name]:
                raise EstargzError(f"{name}: chunks do not add up to the file's digest")
            files += 1
    if whole:
        raise EstargzError(f"files with missing chunks: {', '.join(sorted(whole))}")
    return chunks, files


def verify_estargz(path: Path, *, expected_toc_digest: str | None = None) -> EstargzReport:
    """Check footer, TOC (and its digest, when the descriptor's annotation is given) and every chunk."""
    with open(path, "rb") as handle:
        size = handle.seek(0, io.SEEK_END)
        if size < FOOTER_SIZE:
            raise EstargzError(f"{path}: too short for an eStargz blob")
        blob = _Blob(handle.fileno(), size - FOOTER_SIZE)
        toc_offset = parse_footer(os.pread(blob.fd, FOOTER_SIZE, blob.end))
        if toc_offset >= blob.end:
            raise EstargzError(f"footer points at {toc_offset}, past the TOC's possible start")
        toc_bytes = _read_toc(blob, toc_offset)
        toc_digest = "sha256:" + hashlib.sha256(toc_bytes).hexdigest()
        if expected_toc_digest is not None and expected_toc_digest != toc_digest:
            raise EstargzError(f"TOC digest is {toc_digest}, the annotation says {expected_toc_digest}")
        try:
            toc = json.loads(toc_bytes)
        except ValueError as exc:
            raise EstargzError(f"TOC is not JSON: {exc}") from exc
        if toc.get("version") != 1 or not isinstance(toc.get("entries"), list):
            raise EstargzError("TOC is not version 1 with a list of entries")
        entries = toc["entries"]
        chunks, files = _verify_chunks(blob, entries)
    landmark = next((e["name"] for e in entries if e.get("name") in LANDMARKS), None)
    return EstargzReport(toc_digest, toc_offset, len(entries), chunks, files, landmark)
