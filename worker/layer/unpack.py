"""Applying an image layer (an uncompressed tar stream) onto a directory, safely.

Names are cleaned (`../` and leading `/` cannot leave the root), parents are resolved inside the
root, hardlink targets must be inside it. Whiteouts either delete (stacking layers natively)
or become overlayfs whiteouts (char 0:0 devices, opaque xattrs) when unpacking into an upper dir.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.layer.paths import clean_relative, parent_in_root, resolve_in_root

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"


class LayerError(BuildError):
    pass


@dataclass
class ApplyStats:
    entries: int = 0
    bytes: int = 0
    neutralised: list[str] = field(default_factory=list)


def _is_real_root() -> bool:
    if os.geteuid() != 0:
        return False
    try:
        parts = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return True
    return len(parts) >= 3 and parts[0] == "0" and parts[1] == "0"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _inside(root: Path, path: Path) -> bool:
    root_s, path_s = os.fspath(root), os.fspath(path)
    return path_s == root_s or path_s.startswith(root_s.rstrip("/") + "/")


def apply_layer(tar_stream: BinaryIO, dest: Path, *, same_owner: bool = True,
                whiteout_mode: str = "delete") -> ApplyStats:
    if whiteout_mode not in ("delete", "overlay"):
        raise ValueError(f"unknown whiteout mode {whiteout_mode}")
    stats = ApplyStats()
    real_root = _is_real_root()
    can_chown = same_owner and os.geteuid() == 0
    opaque_xattr = "trusted.overlay.opaque" if real_root else "user.overlay.opaque"
    created: set[str] = set()
    dir_times: list[tuple[Path, float]] = []
    try:
        tar = tarfile.open(fileobj=tar_stream, mode="r|")
    except tarfile.TarError as exc:
        raise LayerError(f"invalid layer: {exc}") from exc
    with tar:
        try:
            for info in tar:
                stats.entries += 1
                rel = clean_relative(info.name)
                if rel != info.name.removeprefix("./").rstrip("/") and info.name not in (".", "./"):
                    stats.neutralised.append(f"{info.name}: rewritten to /{rel}")
                if not rel:
                    continue
                parent, name = parent_in_root(dest, rel)
                if not _inside(dest, parent):
                    stats.neutralised.append(f"{info.name}: parent resolves outside the layer; skipped")
                    continue
                if name == OPAQUE:
                    _opaque(parent, dest, created, whiteout_mode, opaque_xattr)
                    continue
                if name.startswith(WHITEOUT_PREFIX):
                    _whiteout(parent / name[len(WHITEOUT_PREFIX):], whiteout_mode)
                    continue
                parent.mkdir(parents=True, exist_ok=True)
                path = parent / name
                created.add(os.fspath(path))
                _apply_entry(tar, info, path, dest, stats, real_root)
                if not os.path.lexists(path):
                    continue
                if not info.issym():
                    if can_chown:
                        try:
                            os.lchown(path, info.uid, info.gid)
                        except OSError as exc:
                            if exc.errno not in (errno.EPERM, errno.EINVAL):
                                raise
                    if not info.islnk():
                        os.chmod(path, info.mode & 0o7777)
                    _xattrs(path, info)
                if info.isdir():
                    dir_times.append((path, info.mtime))
                elif not info.islnk():
                    os.utime(path, (info.mtime, info.mtime), follow_symlinks=False)
        except tarfile.TarError as exc:
            raise LayerError(f"invalid layer: {exc}") from exc
    for path, mtime in reversed(dir_times):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return stats


def _apply_entry(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path, dest: Path, stats: ApplyStats,
                 real_root: bool) -> None:
    if info.isdir():
        if os.path.lexists(path) and not (path.is_dir() and not path.is_symlink()):
            _remove(path)
        path.mkdir(exist_ok=True)
        return
    if os.path.lexists(path):
        _remove(path)
    if info.isreg():
        source = tar.extractfile(info)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            if source is not None:
                shutil.copyfileobj(source, out, 1 << 20)
        stats.bytes += info.size
    elif info.issym():
        os.symlink(info.linkname, path)
    elif info.islnk():
        target = resolve_in_root(dest, clean_relative(info.linkname), follow_last=False)
        if not _inside(dest, target) or not os.path.lexists(target):
            raise LayerError(f"invalid hardlink {info.name} -> {info.linkname}: target is not in the layer")
        os.link(target, path, follow_symlinks=False)
    elif info.isfifo():
        os.mkfifo(path, 0o600)
    elif info.ischr() or info.isblk():
        kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
        try:
            os.mknod(path, kind | 0o600, os.makedev(info.devmajor, info.devminor))
        except PermissionError:
            stats.neutralised.append(f"{info.name}: device node skipped (mknod not permitted)")
    else:
        stats.neutralised.append(f"{info.name}: unsupported tar entry type {info.type!r} skipped")


def _whiteout(target: Path, mode: str) -> None:
    if mode == "delete":
        if os.path.lexists(target):
            _remove(target)
        return
    if os.path.lexists(target):
        _remove(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _opaque(directory: Path, dest: Path, created: set[str], mode: str, xattr: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if mode == "overlay":
        os.setxattr(directory, xattr, b"y")
        return
    for child in list(directory.iterdir()):
        if os.fspath(child) not in created:
            _remove(child)


def _xattrs(path: Path, info: tarfile.TarInfo) -> None:
    for key, value in info.pax_headers.items():
        if not key.startswith("SCHILY.xattr."):
            continue
        name = key[len("SCHILY.xattr."):]
        try:
            os.setxattr(path, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
        except OSError:
            continue  # e.g. security.* in a user namespace: not ours to force
