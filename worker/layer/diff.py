"""What a layer changed, and the layer tar that carries those changes.

From an overlay upper dir the changes are read directly (whiteout devices are deletions, opaque
xattrs mark replaced directories). Between two full trees (native snapshots, diff ops) the trees
are compared by metadata. The tar is written in sorted order with numeric owners and no user
names, and with `source_date_epoch` every mtime is clamped, so equal inputs give equal bytes.
"""
from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from pybuildkit.worker.fsutil.compare import same_metadata

OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


@dataclass(frozen=True, order=True)
class Change:
    path: str  # relative, slash separated
    kind: str  # "add" | "modify" | "delete" | "opaque"


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
    out: list[Change] = []
    root = os.fspath(upper)

    def walk(directory: str, rel: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            st = entry.stat(follow_symlinks=False)
            if _is_whiteout(st):
                out.append(Change(child_rel, "delete"))
                continue
            out.append(Change(child_rel, "add"))
            if stat.S_ISDIR(st.st_mode):
                if _is_opaque(entry.path):
                    out.append(Change(child_rel, "opaque"))
                walk(entry.path, child_rel)

    walk(root, "")
    return out


def changes_between(lower: Path | None, upper: Path) -> list[Change]:
    out: list[Change] = []

    def walk(low: str | None, up: str, rel: str) -> bool:
        """Returns whether anything below changed (so the parent dir is included)."""
        with os.scandir(up) as it:
            upper_entries = {e.name: e for e in it}
        lower_names: set[str] = set()
        if low is not None and os.path.isdir(low) and not os.path.islink(low):
            lower_names = set(os.listdir(low))
        changed_any = False
        for name in sorted(lower_names - set(upper_entries)):
            out.append(Change(f"{rel}/{name}" if rel else name, "delete"))
            changed_any = True
        for name in sorted(upper_entries):
            entry = upper_entries[name]
            child_rel = f"{rel}/{name}" if rel else name
            st = entry.stat(follow_symlinks=False)
            low_path = os.path.join(low, name) if low is not None and name in lower_names else None
            low_st = os.lstat(low_path) if low_path else None
            same = low_st is not None and same_metadata(low_st, st, low_path, entry.path)
            position = len(out)
            if stat.S_ISDIR(st.st_mode):
                child_low = low_path if low_st is not None and stat.S_ISDIR(low_st.st_mode) else None
                below = walk(child_low, entry.path, child_rel)
                if not same or below:
                    out.insert(position, Change(child_rel, "add" if low_st is None else "modify"))
                    changed_any = True
            elif not same:
                out.append(Change(child_rel, "add" if low_st is None else "modify"))
                changed_any = True
        return changed_any

    walk(os.fspath(lower) if lower is not None else None, os.fspath(upper), "")
    return out


def write_layer_tar(changes: Sequence[Change], upper: Path, out: BinaryIO, *,
                    source_date_epoch: int | None = None, opaque_dirs: Iterable[str] = ()) -> None:
    root = os.fspath(upper)
    opaque = set(opaque_dirs) | {c.path for c in changes if c.kind == "opaque"}
    seen_inodes: dict[tuple[int, int], str] = {}
    entries: list[tuple[str, Change | None]] = []
    for change in changes:
        if change.kind == "opaque":
            continue
        if change.kind == "delete":
            head, _, name = change.path.rpartition("/")
            entries.append((f"{head}/.wh.{name}" if head else f".wh.{name}", None))
        else:
            entries.append((change.path, change))
    for directory in opaque:
        entries.append((f"{directory}/.wh..wh..opq", None))
    entries.sort(key=lambda item: _sort_key(item[0]))
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, change in entries:
            if change is None:
                info = tarfile.TarInfo(name)
                info.mtime = source_date_epoch or 0
                tar.addfile(info)
                continue
            full = os.path.join(root, change.path)
            st = os.lstat(full)
            info = tarfile.TarInfo(name + ("/" if stat.S_ISDIR(st.st_mode) else ""))
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid = st.st_uid, st.st_gid
            info.uname = info.gname = ""
            info.mtime = int(st.st_mtime) if source_date_epoch is None else min(int(st.st_mtime), source_date_epoch)
            for attr in _xattr_headers(full):
                info.pax_headers[attr[0]] = attr[1]
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in seen_inodes:
                    info.type, info.linkname = tarfile.LNKTYPE, seen_inodes[key]
                    tar.addfile(info)
                    continue
                seen_inodes[key] = name
                info.size = st.st_size
                with open(full, "rb") as handle:
                    tar.addfile(info, handle)
            elif stat.S_ISFIFO(st.st_mode):
                info.type = tarfile.FIFOTYPE
                tar.addfile(info)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tar.addfile(info)


def _sort_key(name: str) -> tuple[str, ...]:
    return tuple(name.split("/"))


def _xattr_headers(path: str) -> list[tuple[str, str]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    out = []
    for name in sorted(names):
        if name.startswith(("trusted.overlay.", "user.overlay.")):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out.append((f"SCHILY.xattr.{name}", value.decode("utf-8", "surrogateescape")))
    return out
