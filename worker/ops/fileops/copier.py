"""Copying one source entry (a file, link, device or whole tree) onto a target path, `cp -a`
style, as fsutil's copier does for BuildKit.

Directories merge into existing ones; a nested existing directory takes the source's metadata,
the top-level one keeps its owner and mode. A file never replaces a directory (and a directory
never a file) unless `always_replace` says so. Hardlinks inside the copy stay hardlinks. Every
copied entry gets the source's owner, mode and times unless the action sets them, and its
extended attributes (best effort). File contents move in the kernel (copy_file_range, which
reflinks where the filesystem can, else sendfile), or not at all: from an immutable tree
(`link`) a file that keeps its metadata is hardlinked.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pybuildkit.worker.contenthash.checksum import FileKey
from pybuildkit.worker.ops.fileops.actions import remove_entry
from pybuildkit.worker.ops.fileops.chmod import ModeSpec
from pybuildkit.worker.ops.fileops.errors import FileOpError
from pybuildkit.worker.ops.fileops.filters import PathFilter
from pybuildkit.worker.ops.fileops.owner import UNSET_TIMESTAMP, Owner, can_chown, copy_xattrs, lchown
from pybuildkit.worker.ops.fileops.paths import shown

_NO_RANGE_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF}
_CHUNK = 1 << 30


@dataclass
class _PendingDir:
    """A directory met while searching for included entries, created only if one is found."""
    src: str
    dest: str
    copied: bool
    created_late: bool = False


class TreeCopier:
    def __init__(self, dest_root: Path, *, owner: Owner | None, mode: ModeSpec | None, timestamp: int,
                 path_filter: PathFilter, always_replace: bool, link: bool = False) -> None:
        self.dest_root = dest_root
        self.owner = owner
        self.mode = mode
        self.timestamp = timestamp
        self.filter = path_filter
        self.always_replace = always_replace
        self._chown = can_chown()
        self._inodes: dict[tuple[int, int], str] = {}
        self._pending: list[_PendingDir] = []
        self._range_copy = True
        # `link`: the source is an immutable tree, so a file whose owner, mode and times the copy
        # keeps is hardlinked rather than copied, until a link fails (another filesystem)
        self._link = link
        self.linked: list[FileKey] = []  # the keys (ChecksumCache's) of the source files hardlinked, before the link

    def copy(self, src: str, rel: str, target: str, nested: bool = False) -> None:
        """Copy `src` to `target`; `rel` is its path below the copied source (`` for the source)."""
        st = os.lstat(src)
        is_dir = stat.S_ISDIR(st.st_mode)
        include = True
        if rel and self.filter.active:
            include = self.filter.included(rel)
            if not include and not (is_dir and self.filter.worth_searching(rel)):
                return
        try:
            target_st: os.stat_result | None = os.lstat(target)
        except FileNotFoundError:
            target_st = None
        if include:
            if self.always_replace and target_st is not None and not (is_dir and stat.S_ISDIR(target_st.st_mode)):
                remove_entry(target)
                target_st = None
            if self.filter.active:
                self._create_pending()
        if not is_dir:
            if not include:
                return
            if target_st is not None:
                if stat.S_ISDIR(target_st.st_mode):
                    raise FileOpError(f"cannot replace to directory {shown(self.dest_root, target)} with file")
                os.unlink(target)
        write_metadata = include
        if is_dir:
            created = self._copy_directory(src, rel, target, include)
            if not nested:
                write_metadata = created
                if not created and target_st is not None:
                    self._set_times(st, target)
        elif stat.S_ISREG(st.st_mode):
            if self._link and self._keeps_metadata(st) and self._linked(src, target, st):
                return  # the same inode: its owner, mode, times and xattrs are already the copy's
            self._copy_file(src, target, st)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), target)
        else:
            os.mknod(target, st.st_mode, st.st_rdev)
        if write_metadata:
            self.write_metadata(st, src, target)

    def _keeps_metadata(self, st: os.stat_result) -> bool:
        if self.timestamp != UNSET_TIMESTAMP:
            return False
        if self.mode is not None and self.mode.apply(st.st_mode) != stat.S_IMODE(st.st_mode):
            return False
        if self.owner is not None:
            return (self.owner.uid, self.owner.gid) == (st.st_uid, st.st_gid)
        return self._chown or (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())

    def _linked(self, src: str, target: str, st: os.stat_result) -> bool:
        try:
            os.link(src, target, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                raise
            self._link = False  # EXDEV: an overlay view, EPERM: protected_hardlinks
            return False
        self.linked.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return True

    def write_metadata(self, st: os.stat_result, src: str, target: str) -> None:
        if self.owner is not None:
            os.lchown(target, self.owner.uid, self.owner.gid)
        elif self._chown:
            lchown(target, st.st_uid, st.st_gid)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(target, self.mode.apply(st.st_mode) if self.mode is not None else stat.S_IMODE(st.st_mode))
        copy_xattrs(src, target)
        self._set_times(st, target)

    def _set_times(self, st: os.stat_result, target: str) -> None:
        if self.timestamp != UNSET_TIMESTAMP:
            os.utime(target, ns=(self.timestamp, self.timestamp), follow_symlinks=False)
        else:
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def _copy_directory(self, src: str, rel: str, target: str, include: bool) -> bool:
        pending = _PendingDir(src, target, copied=False)
        created = False
        if include:
            created = self._directory_only(target)
            pending.copied = True
        self._pending.append(pending)
        try:
            with os.scandir(src) as entries:
                names = sorted(entry.name for entry in entries)
            for name in names:
                self.copy(f"{src}/{name}", f"{rel}/{name}" if rel else name, f"{target}/{name}", nested=True)
        finally:
            self._pending.pop()
        if pending.created_late:
            self._set_times(os.stat(src), target)
        return created

    def _directory_only(self, target: str) -> bool:
        """Make `target` a directory; True when it had to be created."""
        try:
            target_st = os.lstat(target)
        except FileNotFoundError:
            os.mkdir(target, 0o700)
            return True
        if not stat.S_ISDIR(target_st.st_mode):
            raise FileOpError(f"cannot copy to non-directory: {shown(self.dest_root, target)}")
        return False

    def _create_pending(self) -> None:
        for pending in self._pending:
            if pending.copied:
                continue
            st = os.stat(pending.src)
            if self._directory_only(pending.dest):
                self.write_metadata(st, pending.src, pending.dest)
                pending.created_late = True
            pending.copied = True

    def _copy_file(self, src: str, target: str, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1:
            first = self._inodes.get(key)
            if first is not None:
                os.link(first, target, follow_symlinks=False)
                return
            self._inodes[key] = target
        src_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            dest_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                self._copy_content(src_fd, dest_fd, st.st_size)
            finally:
                os.close(dest_fd)
        finally:
            os.close(src_fd)

    def _copy_content(self, src_fd: int, dest_fd: int, size: int) -> None:
        if size == 0:
            return
        if self._range_copy:
            try:
                while os.copy_file_range(src_fd, dest_fd, _CHUNK):
                    pass
                return
            except OSError as exc:
                if exc.errno not in _NO_RANGE_COPY:
                    raise
                self._range_copy = False
                os.lseek(src_fd, 0, os.SEEK_SET)
                os.lseek(dest_fd, 0, os.SEEK_SET)
                os.ftruncate(dest_fd, 0)
        offset = 0
        while sent := os.sendfile(dest_fd, src_fd, offset, _CHUNK):
            offset += sent
