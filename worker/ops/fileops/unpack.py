"""ADD's archive auto-extraction: a local tar (plain, gzip, bzip2, xz or zstd) is unpacked into
the destination directory instead of being copied.

A file counts as an archive when it is a regular file whose (decompressed) start parses as a tar
header, as BuildKit checks. Extraction follows BuildKit's, not an image layer's: entries keep the
archive's owners unless the action sets one (which then owns every entry), directories the
archive only implies are created 0755 root-owned, `.wh.` names are ordinary files, and no entry
(nor a link planted by an earlier entry) can write outside the destination.
"""
from __future__ import annotations

import bz2
import lzma
import os
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pybuildkit.worker.compression import decompress_reader
from pybuildkit.worker.ops.fileops.actions import remove_entry
from pybuildkit.worker.ops.fileops.errors import FileOpError
from pybuildkit.worker.ops.fileops.owner import Owner, can_chown, lchown
from pybuildkit.worker.ops.fileops.paths import in_root, shown

_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_CHUNK = 1 << 20


@contextmanager
def _decompressed(path: Path) -> Iterator[BinaryIO]:
    with open(path, "rb") as raw:
        head = raw.read(6)
        raw.seek(0)
        if head.startswith(_BZIP2_MAGIC):
            stream: BinaryIO = bz2.BZ2File(raw)  # type: ignore[assignment]
        elif head.startswith(_XZ_MAGIC):
            stream = lzma.LZMAFile(raw)  # type: ignore[assignment]
        else:
            stream = decompress_reader(raw)
        yield stream


def is_archive(path: Path) -> bool:
    if not stat.S_ISREG(os.lstat(path).st_mode):
        return False
    try:
        with _decompressed(path) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, ValueError):
        return False


def unpack_archive(archive: Path, dest_root: Path, dest: Path, owner: Owner | None) -> None:
    """Extract `archive` into the existing directory `dest` (a host path under `dest_root`)."""
    chown = can_chown()
    dir_times: list[tuple[Path, int]] = []
    try:
        with _decompressed(archive) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                rel = os.path.normpath("/" + info.name).lstrip("/")
                if not rel or rel == ".":
                    continue
                path = _prepare(dest, rel, info.isdir(), chown)
                _extract(tar, info, dest, path)
                if chown:
                    uid, gid = (owner.uid, owner.gid) if owner is not None else (info.uid, info.gid)
                    lchown(path, uid, gid)
                mtime = int(info.mtime * 10**9)
                if info.issym():
                    os.utime(path, ns=(mtime, mtime), follow_symlinks=False)
                    continue
                os.chmod(path, info.mode & 0o7777)
                if info.isdir():
                    dir_times.append((path, mtime))
                else:
                    os.utime(path, ns=(mtime, mtime))
    except (tarfile.TarError, EOFError, lzma.LZMAError, OSError) as exc:
        raise FileOpError(f"failed to unpack {shown(dest_root, dest)}: {exc}") from exc
    for path, mtime in reversed(dir_times):
        os.utime(path, ns=(mtime, mtime))


def _prepare(dest: Path, rel: str, is_dir: bool, chown: bool) -> Path:
    """The entry's host path, its parents created and whatever is in its way removed."""
    parent_rel, _, name = rel.rpartition("/")
    parent = dest
    for part in parent_rel.split("/") if parent_rel else ():
        parent = in_root(dest, os.path.relpath(parent / part, dest))
        if not os.path.lexists(parent):
            os.mkdir(parent, 0o755)
            os.chmod(parent, 0o755)
            if chown:
                lchown(parent, 0, 0)
        elif not parent.is_dir():
            raise FileOpError(f"mkdir {shown(dest, parent)}: not a directory")
    path = parent / name
    if os.path.lexists(path) and not (is_dir and path.is_dir() and not path.is_symlink()):
        remove_entry(path)
    return path


def _extract(tar: tarfile.TarFile, info: tarfile.TarInfo, dest: Path, path: Path) -> None:
    if info.isdir():
        if not path.is_dir():
            os.mkdir(path, 0o700)
    elif info.isreg():
        source = tar.extractfile(info)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            while source is not None and (chunk := source.read(_CHUNK)):
                out.write(chunk)
    elif info.issym():
        os.symlink(info.linkname, path)
    elif info.islnk():
        link_rel = os.path.normpath("/" + info.linkname).lstrip("/")
        if not link_rel or link_rel == ".":
            raise FileOpError(f"archive hardlink {info.name!r} targets the extraction root")
        target = in_root(dest, link_rel, follow_last=False)
        os.link(target, path, follow_symlinks=False)
    elif info.isfifo():
        os.mkfifo(path, 0o600)
    elif info.ischr() or info.isblk():
        kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
        os.mknod(path, kind | 0o600, os.makedev(info.devmajor, info.devminor))
    else:
        raise FileOpError(f"unsupported tar entry {info.name!r} of type {info.type!r}")
