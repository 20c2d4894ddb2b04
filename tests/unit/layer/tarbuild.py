"""Building layer tars entry by entry in tests, hostile ones included."""
from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field


@dataclass
class Item:
    kind: str  # file, dir, symlink, hardlink, fifo, char, block
    name: str
    data: bytes = b""
    link: str = ""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    mtime: int = 1_600_000_000
    dev: tuple[int, int] = (0, 0)
    pax: dict[str, str] = field(default_factory=dict)


_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
          "fifo": tarfile.FIFOTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE}


def layer(*items: Item) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for item in items:
            info = tarfile.TarInfo(item.name)
            info.type = _TYPES[item.kind]
            info.mode = item.mode if item.mode is not None else (0o755 if item.kind == "dir" else 0o644)
            info.uid, info.gid, info.mtime = item.uid, item.gid, item.mtime
            info.linkname = item.link
            info.devmajor, info.devminor = item.dev
            info.pax_headers = dict(item.pax)
            if item.kind == "file":
                info.size = len(item.data)
                tar.addfile(info, io.BytesIO(item.data))
            else:
                tar.addfile(info)
    buf.seek(0)
    return buf


def file(name: str, data: bytes | str = b"", **kw: object) -> Item:
    return Item("file", name, data.encode() if isinstance(data, str) else data, **kw)  # type: ignore[arg-type]


def directory(name: str, **kw: object) -> Item:
    return Item("dir", name, **kw)  # type: ignore[arg-type]


def symlink(name: str, target: str, **kw: object) -> Item:
    return Item("symlink", name, link=target, **kw)  # type: ignore[arg-type]


def hardlink(name: str, target: str, **kw: object) -> Item:
    return Item("hardlink", name, link=target, **kw)  # type: ignore[arg-type]
