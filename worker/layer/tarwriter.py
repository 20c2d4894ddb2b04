"""A small, deterministic tar writer in the shape Go's archive/tar gives BuildKit's layers.

Why not `tarfile`: its header bytes change between Python versions (3.12 stopped writing device
fields for regular files) and its stream mode copies content in 10 KiB pieces. Layers must be
bit-identical across builds and fast, so headers are built here and content goes through
`os.sendfile` when the output is a real file descriptor.

Format (PAX like Go's `FormatPAX`): ustar magic "ustar\\0" "00"; numeric fields as zero-padded
octal with a trailing NUL; device fields "0000000\\0" unless the entry is a device; uname and
gname empty; an extended header (`PaxHeaders.0/<name>`) only when a value does not fit the
ustar fields (long or non-ASCII names, big ids or sizes, xattrs).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import BinaryIO

BLOCK = 512
NAME_SIZE = 100
COPY_CHUNK = 1 << 20
FLUSH_AT = 1 << 16

REGTYPE = b"0"
LNKTYPE = b"1"
SYMTYPE = b"2"
CHRTYPE = b"3"
BLKTYPE = b"4"
DIRTYPE = b"5"
FIFOTYPE = b"6"
PAXTYPE = b"x"

_MAX_OCTAL_8 = 0o7777777
_MAX_OCTAL_12 = 0o77777777777


@dataclass
class TarEntry:
    """One tar member's metadata; `pax` holds extra records such as SCHILY.xattr.* (raw bytes)."""

    name: str
    type: bytes = REGTYPE
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, bytes] = field(default_factory=dict)


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _field(raw: bytes, width: int) -> bytes:
    return raw[:width].ljust(width, b"\0")


def _ascii(text: str) -> bytes:
    return text.encode("ascii", "ignore")


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _block(entry: TarEntry, name: bytes, linkname: bytes, uid: int, gid: int, size: int, mtime: int,
           *, devices: bool) -> bytes:
    head = (_field(name, 100) + _octal(entry.mode & 0o7777, 8) + _octal(uid, 8) + _octal(gid, 8)
            + _octal(size, 12) + _octal(mtime, 12))
    tail = (entry.type + _field(linkname, 100) + b"ustar\x0000" + b"\0" * 64
            + (_octal(entry.devmajor, 8) + _octal(entry.devminor, 8) if devices else _octal(0, 8) * 2)
            + b"\0" * 167)
    checksum = sum(head) + sum(tail) + 8 * 0x20
    return head + b"%06o\0 " % checksum + tail


def header_bytes(entry: TarEntry) -> bytes:
    """The header block(s) of one entry, including its PAX extended header when needed."""
    records: dict[str, bytes] = {}
    name_raw = os.fsencode(entry.name)
    link_raw = os.fsencode(entry.linkname)
    if len(name_raw) > NAME_SIZE or not name_raw.isascii():
        records["path"] = name_raw
    if len(link_raw) > NAME_SIZE or not link_raw.isascii():
        records["linkpath"] = link_raw
    uid, gid, size, mtime = entry.uid, entry.gid, entry.size, entry.mtime
    if uid > _MAX_OCTAL_8:
        records["uid"], uid = str(uid).encode(), 0
    if gid > _MAX_OCTAL_8:
        records["gid"], gid = str(gid).encode(), 0
    if size > _MAX_OCTAL_12:
        records["size"], size = str(size).encode(), 0
    if not 0 <= mtime <= _MAX_OCTAL_12:
        records["mtime"], mtime = str(mtime).encode(), 0
    records.update(entry.pax)
    devices = entry.type in (CHRTYPE, BLKTYPE)
    main = _block(entry, _ascii(entry.name), _ascii(entry.linkname), uid, gid, size, mtime, devices=devices)
    if not records:
        return main
    data = b"".join(_pax_record(key, records[key]) for key in sorted(records))
    head, _, base = entry.name.rstrip("/").rpartition("/")
    pax_name = _ascii(f"{head}/PaxHeaders.0/{base}" if head else f"PaxHeaders.0/{base}")[:NAME_SIZE].rstrip(b"/")
    pax_entry = TarEntry(name="", type=PAXTYPE, mode=0)
    pax = _block(pax_entry, pax_name, b"", 0, 0, len(data), 0, devices=False)
    return pax + data + b"\0" * (-len(data) % BLOCK) + main


class TarContentError(OSError):
    """A file changed size while its content was being written."""


class TarWriter:
    """Writes entries to `out`, sending file content kernel-side when `out` has a file descriptor.

    Small pieces (headers, padding) are gathered and written in batches; before content is
    sent with sendfile the batch is flushed, so the bytes land in order.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._fd = self._usable_fd(out)
        self._pending = bytearray()
        self.written = 0

    @staticmethod
    def _usable_fd(out: BinaryIO) -> int | None:
        try:
            fd = out.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        out.flush()
        return fd

    def _emit(self, data: bytes) -> None:
        self._pending += data
        self.written += len(data)
        if len(self._pending) >= FLUSH_AT:
            self._flush_pending()

    def _flush_pending(self) -> None:
        if not self._pending:
            return
        if self._fd is None:
            self._out.write(self._pending)
        else:
            view = memoryview(self._pending)
            while view:
                view = view[os.write(self._fd, view):]
        self._pending = bytearray()

    def add(self, entry: TarEntry, content_fd: int | None = None) -> None:
        """Write one entry; regular files with size > 0 need `content_fd` positioned at 0."""
        self._emit(header_bytes(entry))
        if entry.type != REGTYPE or entry.size == 0:
            return
        if content_fd is None:
            raise ValueError(f"{entry.name}: content needed for a regular file of {entry.size} bytes")
        self._copy(content_fd, entry.size, entry.name)
        self._emit(b"\0" * (-entry.size % BLOCK))

    def add_bytes(self, entry: TarEntry, data: bytes) -> None:
        entry.size = len(data)
        self._emit(header_bytes(entry))
        self._emit(data)
        self._emit(b"\0" * (-len(data) % BLOCK))

    def _copy(self, src_fd: int, size: int, name: str) -> None:
        self._flush_pending()
        remaining = size
        if self._fd is not None:
            offset = 0
            while remaining:
                sent = os.sendfile(self._fd, src_fd, offset, min(remaining, 1 << 30))
                if sent == 0:
                    raise TarContentError(f"{name}: file shrank while it was written to the layer")
                offset += sent
                remaining -= sent
        else:
            buffer = bytearray(min(COPY_CHUNK, size))
            view = memoryview(buffer)
            while remaining:
                got = os.readv(src_fd, [view[:min(remaining, len(buffer))]])
                if got == 0:
                    raise TarContentError(f"{name}: file shrank while it was written to the layer")
                self._out.write(view[:got])
                remaining -= got
        self.written += size

    def close(self) -> None:
        """The end-of-archive marker (two zero blocks), then everything is flushed."""
        self._emit(b"\0" * (2 * BLOCK))
        self._flush_pending()
        if self._fd is None:
            flush = getattr(self._out, "flush", None)
            if flush is not None:
                flush()
