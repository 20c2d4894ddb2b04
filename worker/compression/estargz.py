"""eStargz: a gzip layer that lazy-pulling snapshotters can read file by file.

Layout (BUILDKIT-FACTS §6): a landmark entry, then for every tar entry its header in one gzip
member and its content in 4 MiB chunks of one member each; then a member holding the TOC
(`stargz.index.json`) and the tar end; then a 51-byte footer pointing at the TOC member.
Decompressed, the blob is one valid tar stream.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

TOC_NAME = "stargz.index.json"
FOOTER_SIZE = 51
NO_PREFETCH_LANDMARK = ".no.prefetch.landmark"
PREFETCH_LANDMARK = ".prefetch.landmark"
LANDMARK_CONTENT = b"\x0f"
CHUNK_SIZE = 4 << 20


def _gzip_member(data: bytes, level: int) -> bytes:
    try:
        from isal import igzip

        from pybuildkit.worker.compression.gzip import isal_level

        return igzip.compress(data, isal_level(level), mtime=0)
    except ImportError:
        compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        return compressor.compress(data) + compressor.flush()


def footer(toc_offset: int) -> bytes:
    """An empty stored-deflate gzip member whose FEXTRA field carries the TOC offset."""
    payload = b"%016xSTARGZ" % toc_offset
    extra = b"SG" + struct.pack("<H", len(payload)) + payload
    header = b"\x1f\x8b\x08\x04" + b"\x00\x00\x00\x00" + b"\x00\xff" + struct.pack("<H", len(extra)) + extra
    empty_stored_block = b"\x01\x00\x00\xff\xff"
    trailer = struct.pack("<II", 0, 0)
    out = header + empty_stored_block + trailer
    assert len(out) == FOOTER_SIZE
    return out


def _modtime(mtime: float) -> str:
    return dt.datetime.fromtimestamp(int(mtime), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_TYPES = {tarfile.DIRTYPE: "dir", tarfile.REGTYPE: "reg", tarfile.AREGTYPE: "reg", tarfile.SYMTYPE: "symlink",
          tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}


class _Writer:
    def __init__(self, dst: BinaryIO, level: int) -> None:
        self.dst = dst
        self.level = level
        self.offset = 0
        self.diff = hashlib.sha256()
        self.size = 0

    def member(self, raw: bytes) -> int:
        start = self.offset
        data = _gzip_member(raw, self.level)
        self.dst.write(data)
        self.offset += len(data)
        self.diff.update(raw)
        self.size += len(raw)
        return start

    def raw(self, data: bytes) -> None:
        self.dst.write(data)
        self.offset += len(data)


def _entry(info: tarfile.TarInfo) -> dict:
    name = info.name.removeprefix("./").rstrip("/")
    entry: dict = {"name": name, "type": _TYPES.get(info.type, "reg")}
    if info.isreg():
        entry["size"] = info.size
    if info.mtime:
        entry["modtime"] = _modtime(info.mtime)
    if info.linkname:
        entry["linkName"] = info.linkname
    entry["mode"] = info.mode
    if info.uid:
        entry["uid"] = info.uid
    if info.gid:
        entry["gid"] = info.gid
    if info.uname:
        entry["userName"] = info.uname
    if info.gname:
        entry["groupName"] = info.gname
    if info.ischr() or info.isblk():
        entry["devMajor"], entry["devMinor"] = info.devmajor, info.devminor
    xattrs = {k[len("SCHILY.xattr."):]: v for k, v in info.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    if xattrs:
        entry["xattrs"] = {k: base64.b64encode(v.encode("utf-8", "surrogateescape")).decode()
                           for k, v in xattrs.items()}
    return entry


def write_estargz_stream(tar_path: Path, dst: BinaryIO, level: int | None = None, *,
                         chunk_size: int = CHUNK_SIZE) -> tuple[str, int, str]:
    """Write the eStargz blob of `tar_path` to dst; returns (diff_id, uncompressed size, TOC digest)."""
    level = 6 if level is None else level
    w = _Writer(dst, level)
    entries: list[dict] = []
    padding = b""

    def header_bytes(info: tarfile.TarInfo) -> bytes:
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    landmark = tarfile.TarInfo(NO_PREFETCH_LANDMARK)
    landmark.size, landmark.mode = 1, 0o644
    w.member(header_bytes(landmark))
    offset = w.member(LANDMARK_CONTENT)
    entries.append({"name": NO_PREFETCH_LANDMARK, "type": "reg", "size": 1, "mode": 0o644, "offset": offset,
                    "digest": "sha256:" + hashlib.sha256(LANDMARK_CONTENT).hexdigest()})
    padding = b"\0" * 511
    with tarfile.open(tar_path, "r:") as tar:
        for info in tar:
            w.member(padding + header_bytes(info))
            padding = b""
            entry = _entry(info)
            if info.isreg() and info.size > 0:
                source = tar.extractfile(info)
                assert source is not None
                whole = hashlib.sha256()
                written = 0
                chunks: list[dict] = []
                while written < info.size:
                    data = source.read(min(chunk_size, info.size - written))
                    whole.update(data)
                    start = w.member(data)
                    chunk = entry if not chunks else {"name": entry["name"], "type": "chunk"}
                    chunk["offset"] = start
                    if written:
                        chunk["chunkOffset"] = written
                    if info.size > chunk_size:
                        chunk["chunkSize"] = len(data)
                    chunk["chunkDigest"] = "sha256:" + hashlib.sha256(data).hexdigest()
                    chunks.append(chunk)
                    written += len(data)
                entry["digest"] = "sha256:" + whole.hexdigest()
                entries.extend(chunks)
                padding = b"\0" * (-info.size % 512)
            else:
                entries.append(entry)
    toc = json.dumps({"version": 1, "entries": entries}, separators=(",", ":")).encode()
    toc_info = tarfile.TarInfo(TOC_NAME)
    toc_info.size, toc_info.mode = len(toc), 0o644
    toc_raw = padding + header_bytes(toc_info) + toc + b"\0" * (-len(toc) % 512) + b"\0" * 1024
    toc_offset = w.member(toc_raw)
    w.raw(footer(toc_offset))
    return "sha256:" + w.diff.hexdigest(), w.size, "sha256:" + hashlib.sha256(toc).hexdigest()


@dataclass
class EstargzReport:
    toc_digest: str
    toc_offset: int
    entries: int
    chunks_verified: int
    problems: list[str] = field(default_factory=list)


def _read_member(blob: bytes, offset: int) -> bytes:
    """Decompress the one gzip member that starts at `offset`, reading only as far as it goes."""
    decompressor = zlib.decompressobj(31)
    view = memoryview(blob)
    parts = []
    position = offset
    while not decompressor.eof and position < len(blob):
        parts.append(decompressor.decompress(view[position:position + (1 << 20)]))
        position += 1 << 20
    return b"".join(parts)


def verify_estargz(path: Path) -> EstargzReport:
    """Our checker: footer format, TOC, and every chunk's digest. Raises ValueError on a defect."""
    blob = path.read_bytes()
    foot = blob[-FOOTER_SIZE:]
    if foot[:4] != b"\x1f\x8b\x08\x04" or foot[12:14] != b"SG" or not foot[16:38].endswith(b"STARGZ"):
        raise ValueError("not an eStargz footer")
    if struct.unpack("<H", foot[10:12])[0] != 26 or struct.unpack("<H", foot[14:16])[0] != 22:
        raise ValueError("eStargz footer has wrong extra-field lengths")
    toc_offset = int(foot[16:32], 16)
    toc_tar = _read_member(blob[:-FOOTER_SIZE], toc_offset)
    with tarfile.open(fileobj=io.BytesIO(toc_tar), mode="r:") as tar:
        member = tar.next()
        if member is None or member.name != TOC_NAME:
            raise ValueError("TOC member does not start with stargz.index.json")
        toc_bytes = tar.extractfile(member).read()  # type: ignore[union-attr]
    toc = json.loads(toc_bytes)
    verified = 0
    for entry in toc["entries"]:
        if "chunkDigest" not in entry:
            continue
        data = _read_member(blob, entry["offset"])
        expected_len = entry.get("chunkSize") or entry.get("size")
        if expected_len is not None and len(data) != expected_len:
            raise ValueError(f"{entry['name']}: chunk at {entry['offset']} has {len(data)} bytes, want {expected_len}")
        if "sha256:" + hashlib.sha256(data).hexdigest() != entry["chunkDigest"]:
            raise ValueError(f"{entry['name']}: chunk digest mismatch at offset {entry['offset']}")
        verified += 1
    return EstargzReport("sha256:" + hashlib.sha256(toc_bytes).hexdigest(), toc_offset, len(toc["entries"]), verified)
