"""mkdir, mkfile, rm and symlink actions on a root directory (copy lives in copy.py).

Paths resolve inside the root as a chroot would (paths.py). Behaviour follows BuildKit's file
backend: mkdir of an existing path is not an error (without makeParents even when it is a
file; with makeParents a file in the way is `not a directory`), mkfile replaces the entry by a
rename so an old file, link or device there is never written through, rm removes recursively
and a wildcard matching nothing removes nothing. Modes are applied exactly (no umask), so a
result never depends on the daemon's umask.
"""
from __future__ import annotations

import errno
import os
import posixpath
import shutil
import tempfile
from pathlib import Path

from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.worker.ops.fileops.errors import FileOpError, os_message
from pybuildkit.worker.ops.fileops.owner import Owner, apply_owner, set_times
from pybuildkit.worker.ops.fileops.paths import clean_path, in_root, resolve_wildcards, shown


def make_dirs(root: Path, directory: Path, mode: int, owner: Owner | None, timestamp: int) -> None:
    """Go's MkdirAll on a host path already resolved under `root`: each directory created gets
    `mode`, `owner` and the timestamp (set once all are made, so a parent keeps it too);
    existing ones are left as they are."""
    missing: list[Path] = []
    current = directory
    while not current.is_dir():
        if os.path.lexists(current):
            raise FileOpError(os_message("mkdir", shown(root, current), OSError(errno.ENOTDIR, "")))
        if current == root or current.parent == current:
            break
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        os.mkdir(path, 0o700)
        os.chmod(path, mode)
        apply_owner(path, owner)
    for path in missing:
        set_times(path, timestamp)


def mkdir(root: Path, a: pb.FileActionMkDir, owner: Owner | None) -> None:
    path = in_root(root, a.path)
    mode = a.mode & 0o777
    if a.makeParents:
        make_dirs(root, path, mode, owner, a.timestamp)
        return
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    except OSError as exc:
        raise FileOpError(os_message("mkdir", shown(root, path), exc)) from exc
    os.chmod(path, mode)
    apply_owner(path, owner)
    set_times(path, a.timestamp)


def mkfile(root: Path, a: pb.FileActionMkFile, owner: Owner | None) -> None:
    path = in_root(root, a.path)
    if path == root:
        raise FileOpError("mkfile /: is a directory")
    name = shown(root, path)
    try:
        fd, staged = tempfile.mkstemp(prefix=".tmp-mkfile", dir=path.parent)
    except OSError as exc:
        raise FileOpError(os_message("open", name, exc)) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(a.data)
        os.chmod(staged, a.mode & 0o777)
        apply_owner(staged, owner)
        set_times(staged, a.timestamp)
        os.rename(staged, path)
    except OSError as exc:
        os.unlink(staged)
        raise FileOpError(os_message("rename", name, exc)) from exc


def rm(root: Path, a: pb.FileActionRm) -> None:
    if not a.allowWildcard:
        _remove_path(root, a.path, a.allowNotFound)
        return
    try:
        matches = resolve_wildcards(root, clean_path(a.path), follow_links=False)
    except OSError as exc:
        if a.allowNotFound:
            return
        raise FileOpError(os_message("lstat", exc.filename and shown(root, exc.filename) or a.path, exc)) from exc
    for match in matches:
        _remove_path(root, match, a.allowNotFound)


def _remove_path(root: Path, path: str, allow_not_found: bool) -> None:
    parent, _, name = posixpath.normpath("/" + path).rpartition("/")
    if not name:
        raise FileOpError(f"rm {path}: refusing to remove the root directory")
    target = in_root(root, parent or "/") / name
    if not os.path.lexists(target):
        if allow_not_found:
            return
        raise FileOpError(os_message("stat", shown(root, target), OSError(errno.ENOENT, "")))
    remove_entry(target)


def remove_entry(path: Path | str) -> None:
    """Remove a file, link or whole directory tree (never following a link)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def symlink(root: Path, a: pb.FileActionSymlink, owner: Owner | None) -> None:
    path = in_root(root, a.newpath)
    try:
        os.symlink(a.oldpath, path)
    except OSError as exc:
        raise FileOpError(os_message(f"symlink {a.oldpath}", shown(root, path), exc)) from exc
    apply_owner(path, owner)
    set_times(path, a.timestamp)
