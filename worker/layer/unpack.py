"""Applying an image layer (an uncompressed tar stream) onto a directory, safely.

A layer comes from a registry, so every name is hostile until proven otherwise. Names are
cleaned (`../` and a leading `/` cannot leave the root, as containerd's apply does), parents are
resolved as if `dest` were `/` (a symlink planted by the layer is followed inside `dest`, never
out of it), the final component is never followed (files are opened with O_NOFOLLOW|O_EXCL
after removing what was there), and hardlink targets must resolve inside `dest`.

Whiteouts either delete (stacking layers natively) or become overlayfs whiteouts (0:0 char
devices, opaque xattrs) when unpacking into an empty upper dir.
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
from pybuildkit.worker.layer.paths import PathEscapeError, clean_relative, resolve_in_root

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE = ".wh..wh..opq"
COPY_CHUNK = 1 << 16
STREAM_BUFFER = 1 << 16
_NOT_PERMITTED = (errno.EPERM, errno.EINVAL, errno.EACCES)


class LayerError(BuildError):
    pass


@dataclass
class ApplyStats:
    entries: int = 0
    bytes: int = 0
    neutralised: list[str] = field(default_factory=list)


def is_real_root() -> bool:
    """Root of the initial user namespace (trusted.* xattrs work) rather than a mapped root."""
    if os.geteuid() != 0:
        return False
    try:
        parts = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return True
    return parts[:3] == ["0", "0", "4294967295"]


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _mtime_ns(info: tarfile.TarInfo) -> int:
    mtime = info.mtime
    return mtime * 1_000_000_000 if isinstance(mtime, int) else int(round(mtime * 1e9))


class _Applier:
    def __init__(self, dest: Path, stats: ApplyStats, *, same_owner: bool, whiteout_mode: str) -> None:
        self.dest = dest
        self.root = os.fspath(dest)
        self.stats = stats
        self.overlay = whiteout_mode == "overlay"
        self.can_chown = same_owner and os.geteuid() == 0
        self.opaque_xattr = "trusted.overlay.opaque" if is_real_root() else "user.overlay.opaque"
        self.parents: dict[str, str] = {}  # cleaned parent -> real directory; reset when links change
        self.created: set[str] = set()
        self.dirs: dict[str, tarfile.TarInfo] = {}
        self.chown_skipped = False
        self.xattrs_skipped: set[str] = set()

    def parent_dir(self, rel_parent: str) -> str:
        cached = self.parents.get(rel_parent)
        if cached is None:
            cached = os.fspath(resolve_in_root(self.dest, rel_parent)) if rel_parent else self.root
            self.parents[rel_parent] = cached
        return cached

    def forget_resolutions(self) -> None:
        self.parents.clear()

    def remove(self, path: str) -> None:
        if os.path.lexists(path):
            _remove(path)
            self.forget_resolutions()

    def apply(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        rel = clean_relative(info.name)
        expected = (info.name[2:] if info.name.startswith("./") else info.name).rstrip("/")
        if rel != expected and expected not in ("", "."):
            self.stats.neutralised.append(f"{info.name}: written as /{rel} (names cannot leave the layer root)")
        if not rel:
            return
        head, _, name = rel.rpartition("/")
        parent = self.parent_dir(head)
        if not (parent == self.root or parent.startswith(self.root.rstrip("/") + "/")):
            raise LayerError(f"{info.name}: parent resolves outside the layer root")
        if name == OPAQUE:
            self.opaque(parent)
            return
        if name.startswith(WHITEOUT_META_PREFIX):
            self.stats.neutralised.append(f"{info.name}: whiteout metadata entry ignored")
            return
        if name.startswith(WHITEOUT_PREFIX):
            self.whiteout(info, parent, name[len(WHITEOUT_PREFIX):])
            return
        os.makedirs(parent, exist_ok=True)
        path = os.path.join(parent, name)
        self.created.add(path)
        self.create(tar, info, path)

    def whiteout(self, info: tarfile.TarInfo, parent: str, target_name: str) -> None:
        if target_name in ("", ".", ".."):
            raise LayerError(f"{info.name}: invalid whiteout (it names no file)")
        target = os.path.join(parent, target_name)
        self.remove(target)
        if self.overlay:
            os.makedirs(parent, exist_ok=True)
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))

    def opaque(self, directory: str) -> None:
        if not os.path.isdir(directory) or os.path.islink(directory):
            self.remove(directory)
            os.makedirs(directory)
        if self.overlay:
            os.setxattr(directory, self.opaque_xattr, b"y", follow_symlinks=False)
            return
        self.clear_lower(directory)

    def clear_lower(self, directory: str) -> None:
        """Remove what this layer did not create, also below directories it did create."""
        with os.scandir(directory) as it:
            entries = list(it)
        for entry in entries:
            if entry.path not in self.created:
                self.remove(entry.path)
            elif entry.is_dir(follow_symlinks=False):
                self.clear_lower(entry.path)

    def create(self, tar: tarfile.TarFile, info: tarfile.TarInfo, path: str) -> None:
        if info.isdir():
            if not (os.path.isdir(path) and not os.path.islink(path)):
                self.remove(path)
                os.mkdir(path, 0o755)
            self.owner_and_xattrs(path, info)
            self.dirs[path] = info  # mode and mtime once everything below is written
            return
        if info.islnk():
            self.hardlink(info, path)
            return
        self.remove(path)
        if info.isreg():
            self.regular(tar, info, path)
            return
        if info.issym():
            os.symlink(info.linkname, path)
            self.forget_resolutions()
        elif info.isfifo():
            os.mkfifo(path, 0o600)
        elif info.ischr() or info.isblk():
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            try:
                os.mknod(path, kind | 0o600, os.makedev(info.devmajor, info.devminor))
            except PermissionError:
                self.stats.neutralised.append(f"{info.name}: device node skipped (mknod is not permitted here)")
                return
        else:
            self.stats.neutralised.append(f"{info.name}: tar entry type {info.type!r} is not supported; skipped")
            return
        self.finish(path, info)

    def regular(self, tar: tarfile.TarFile, info: tarfile.TarInfo, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            source = tar.extractfile(info)
            if source is not None and info.size:
                buffer = bytearray(min(COPY_CHUNK, info.size))
                view = memoryview(buffer)
                while True:
                    got = source.readinto(view)  # type: ignore[attr-defined]
                    if not got:
                        break
                    chunk = view[:got]
                    while chunk:
                        chunk = chunk[os.write(fd, chunk):]
            self.stats.bytes += info.size
            if self.can_chown:
                self.chown(fd, info, follow=True)
            os.fchmod(fd, info.mode & 0o7777)
            self.xattrs(fd, info)
            ns = _mtime_ns(info)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def hardlink(self, info: tarfile.TarInfo, path: str) -> None:
        target_rel = clean_relative(info.linkname)
        target = os.fspath(resolve_in_root(self.dest, target_rel, follow_last=False)) if target_rel else self.root
        inside = target.startswith(self.root.rstrip("/") + "/")
        if not inside or not os.path.lexists(target) or (os.path.isdir(target) and not os.path.islink(target)):
            raise LayerError(f"invalid hardlink {info.name} -> {info.linkname}: the target is not a file in the layer")
        if os.path.lexists(path) and os.path.samestat(os.lstat(path), os.lstat(target)):
            return
        self.remove(path)
        os.link(target, path, follow_symlinks=False)
        self.finish(path, info)

    def finish(self, path: str, info: tarfile.TarInfo) -> None:
        self.owner_and_xattrs(path, info)
        if not os.path.islink(path):
            os.chmod(path, info.mode & 0o7777)
        ns = _mtime_ns(info)
        os.utime(path, ns=(ns, ns), follow_symlinks=False)

    def owner_and_xattrs(self, path: str, info: tarfile.TarInfo) -> None:
        if self.can_chown:
            self.chown(path, info, follow=False)
        if not info.issym():
            self.xattrs(path, info)

    def chown(self, target: int | str, info: tarfile.TarInfo, *, follow: bool) -> None:
        try:
            os.chown(target, info.uid, info.gid, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno not in _NOT_PERMITTED:
                raise
            if not self.chown_skipped:
                self.chown_skipped = True
                self.stats.neutralised.append(f"{info.name}: owner {info.uid}:{info.gid} not applied ({exc.strerror})"
                                              " — ids outside this user namespace keep the unpacking user")

    def xattrs(self, target: int | str, info: tarfile.TarInfo) -> None:
        for key, value in info.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            raw = value.encode("utf-8", "surrogateescape")
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, raw)
                else:
                    os.setxattr(target, name, raw, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (*_NOT_PERMITTED, errno.ENOTSUP):
                    raise
                if name not in self.xattrs_skipped:
                    self.xattrs_skipped.add(name)
                    self.stats.neutralised.append(f"{info.name}: xattr {name} not applied ({exc.strerror});"
                                                  " later entries with it are not listed")

    def finish_dirs(self) -> None:
        for path in sorted(self.dirs, key=len, reverse=True):
            info = self.dirs[path]
            if not os.path.isdir(path) or os.path.islink(path):
                continue
            os.chmod(path, info.mode & 0o7777)
            ns = _mtime_ns(info)
            os.utime(path, ns=(ns, ns), follow_symlinks=False)


def apply_layer(tar_stream: BinaryIO, dest: Path, *, same_owner: bool = True,
                whiteout_mode: str = "delete") -> ApplyStats:
    """Apply an uncompressed layer tar stream onto `dest`; see the module docstring for the rules."""
    if whiteout_mode not in ("delete", "overlay"):
        raise ValueError(f"unknown whiteout mode {whiteout_mode!r} (expected delete or overlay)")
    stats = ApplyStats()
    applier = _Applier(Path(dest), stats, same_owner=same_owner, whiteout_mode=whiteout_mode)
    try:
        tar = tarfile.open(fileobj=tar_stream, mode="r|", bufsize=STREAM_BUFFER)
    except tarfile.TarError as exc:
        raise LayerError(f"invalid layer: {exc}") from exc
    info: tarfile.TarInfo | None = None
    with tar:
        try:
            for info in tar:
                stats.entries += 1
                applier.apply(tar, info)
        except tarfile.TarError as exc:
            where = f" after {info.name}" if info is not None else ""
            raise LayerError(f"invalid layer{where}: {exc}") from exc
        except PathEscapeError as exc:
            name = info.name if info is not None else "?"
            raise LayerError(f"{name}: {exc.message}") from exc
        except OSError as exc:
            name = info.name if info is not None else "?"
            raise LayerError(f"{name}: cannot apply layer entry: {exc.strerror or exc}") from exc
    applier.finish_dirs()
    return stats
