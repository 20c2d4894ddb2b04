"""What a layer changed, and the layer tar that carries those changes.

From an overlay upper dir the changes are read directly (whiteout devices are deletions, opaque
xattrs mark directories that hide everything below them). Between two full trees (native
snapshots, diff ops) the trees are compared by metadata, and by content when both mtimes are
whole seconds (a tree unpacked from a tar has lost its nanoseconds, so equal metadata proves
nothing there; containerd's differ makes the same call).

The tar follows containerd's change writer, which BuildKit uses: entries sorted as a directory
walk visits them, parents of every entry included, numeric owners with empty names, mtimes
truncated to seconds, hardlinks inside the layer kept as hardlinks, `security.capability` as
the only xattr carried. With `source_date_epoch` every mtime is clamped to it and whiteouts get
it as their mtime, so equal trees give equal bytes.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pybuildkit.worker.fsutil.compare import same_metadata
from pybuildkit.worker.layer.tarwriter import (BLKTYPE, CHRTYPE, DIRTYPE, FIFOTYPE, LNKTYPE, SYMTYPE, TarEntry,
                                               TarWriter)

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
LAYER_XATTRS = ("security.capability",)
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_CONTENT_CHUNK = 1 << 20


@dataclass(frozen=True)
class Change:
    """One changed path. `kind` is add, modify or delete; an overlay upper dir also reports
    `opaque` for a directory that hides its lower contents (next to that directory's add)."""

    kind: str
    path: str  # relative, slash separated


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False


def changes_from_overlay_upper(upper: Path) -> list[Change]:
    """Every entry of the upper dir is an addition; 0:0 char devices are deletions."""
    out: list[Change] = []

    def walk(directory: str, rel: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: os.fsencode(e.name))
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            if _is_whiteout(st):
                out.append(Change("delete", child))
                continue
            out.append(Change("add", child))
            if stat.S_ISDIR(st.st_mode):
                if _is_opaque(entry.path):
                    out.append(Change("opaque", child))
                walk(entry.path, child)

    walk(os.fspath(upper), "")
    return out


def _same_content(a: str, b: str) -> bool:
    try:
        with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
            while True:
                block_a, block_b = fa.read(_CONTENT_CHUNK), fb.read(_CONTENT_CHUNK)
                if block_a != block_b:
                    return False
                if not block_a:
                    return True
    except OSError:
        return False


def _capability(path: str) -> bytes | None:
    try:
        return os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        return None


def _unchanged(low_st: os.stat_result, st: os.stat_result, low_path: str, up_path: str) -> bool:
    if not same_metadata(low_st, st, low_path, up_path):
        return False
    if stat.S_ISREG(st.st_mode):
        if _capability(low_path) != _capability(up_path):
            return False
        if st.st_size and low_st.st_mtime_ns % 1_000_000_000 == 0 and st.st_mtime_ns % 1_000_000_000 == 0:
            return (low_st.st_dev, low_st.st_ino) == (st.st_dev, st.st_ino) or _same_content(low_path, up_path)
    return True


def changes_between(lower: Path | None, upper: Path) -> list[Change]:
    """The changes that turn `lower` (None: empty) into `upper`; a directory is listed as
    modified when anything below it changed, so its entry lands in the layer (as BuildKit's)."""
    out: list[Change] = []

    def walk(low: str | None, up: str, rel: str) -> bool:
        with os.scandir(up) as it:
            upper_entries = {e.name: e for e in it}
        lower_names: set[str] = set()
        if low is not None:
            lower_names = set(os.listdir(low))
        changed = False
        for name in sorted(lower_names | set(upper_entries), key=os.fsencode):
            child = f"{rel}/{name}" if rel else name
            entry = upper_entries.get(name)
            if entry is None:
                out.append(Change("delete", child))
                changed = True
                continue
            st = entry.stat(follow_symlinks=False)
            low_path = os.path.join(low, name) if low is not None and name in lower_names else None
            low_st = os.lstat(low_path) if low_path is not None else None
            same = low_st is not None and low_path is not None and _unchanged(low_st, st, low_path, entry.path)
            if stat.S_ISDIR(st.st_mode):
                position = len(out)
                child_low = low_path if low_st is not None and stat.S_ISDIR(low_st.st_mode) else None
                below = walk(child_low, entry.path, child)
                if not same or below:
                    out.insert(position, Change("add" if low_st is None else "modify", child))
                    changed = True
            elif not same:
                out.append(Change("add" if low_st is None else "modify", child))
                changed = True
        return changed

    walk(os.fspath(lower) if lower is not None else None, os.fspath(upper), "")
    return out


def _walk_key(path: str) -> tuple[bytes, ...]:
    return tuple(os.fsencode(part) for part in path.split("/"))


def write_layer_tar(changes: Sequence[Change], upper: Path, out: BinaryIO, *,
                    source_date_epoch: int | None = None, opaque_dirs: Iterable[str] = ()) -> None:
    """Write the layer tar of `changes` (contents read from `upper`) to `out`."""
    root = os.fspath(upper)
    opaque = set(opaque_dirs) | {c.path for c in changes if c.kind == "opaque"}
    # sort key -> (tar name, path in upper, or None for a whiteout)
    planned: dict[tuple[bytes, ...], tuple[str, str | None]] = {}
    for change in changes:
        if change.kind == "opaque":
            continue
        if change.kind == "delete":
            head, _, name = change.path.rpartition("/")
            whiteout = f"{head}/{WHITEOUT_PREFIX}{name}" if head else WHITEOUT_PREFIX + name
            planned[_walk_key(change.path) + (b"",)] = (whiteout, None)
        else:
            planned[_walk_key(change.path)] = (change.path, change.path)
    for directory in opaque:
        planned[_walk_key(directory) + (b"", b"")] = (f"{directory}/{OPAQUE_MARKER}", None)
    for name, _ in list(planned.values()):
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            key = _walk_key(parent)
            if key not in planned and os.path.isdir(os.path.join(root, parent)):
                planned[key] = (parent, parent)
    whiteout_mtime = source_date_epoch or 0
    links: dict[tuple[int, int], str] = {}
    writer = TarWriter(out)
    for key in sorted(planned):
        name, path = planned[key]
        if path is None:
            writer.add(TarEntry(name=name, mtime=whiteout_mtime, mode=0))
            continue
        _add_path(writer, os.path.join(root, path), name, source_date_epoch, links)
    writer.close()


def _add_path(writer: TarWriter, full: str, name: str, epoch: int | None, links: dict[tuple[int, int], str]) -> None:
    st = os.lstat(full)
    mtime = st.st_mtime_ns // 1_000_000_000
    entry = TarEntry(name=name, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                     mtime=mtime if epoch is None else min(mtime, epoch))
    mode = st.st_mode
    if stat.S_ISREG(mode):
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            cap = _capability(full)
            if cap is not None:
                entry.pax["SCHILY.xattr.security.capability"] = cap
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                entry.type, entry.linkname = LNKTYPE, links[key]
                writer.add(entry)
                return
            if st.st_nlink > 1:
                links[key] = name
            entry.size = st.st_size
            writer.add(entry, fd)
        finally:
            os.close(fd)
        return
    if stat.S_ISDIR(mode):
        entry.name, entry.type = name + "/", DIRTYPE
    elif stat.S_ISLNK(mode):
        entry.type, entry.linkname = SYMTYPE, os.readlink(full)
    elif stat.S_ISFIFO(mode):
        entry.type = FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        entry.type = CHRTYPE if stat.S_ISCHR(mode) else BLKTYPE
        entry.devmajor, entry.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return  # sockets have no tar form; containerd skips them too
    writer.add(entry)
