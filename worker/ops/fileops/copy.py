"""FileActionCopy: where each source lands, following BuildKit's copy rules.

* The destination's parent must exist unless `createDestPath`; a destination ending in `/` (or
  `/.`) is a directory and is created, with its missing parents (0755, or the octal `mode`).
* A file copied onto an existing directory lands inside it; a directory copied onto an existing
  path lands inside it too, unless `dirCopyContents`, which merges its contents instead.
* With `allowWildcard` the source may match several entries (each copied by the rules above);
  matching nothing is an error unless `allowEmptyWildcard`.
* `followSymlink` copies what a source link points to (resolved inside the source root) instead
  of the link itself; links inside a copied tree are always copied as links.
* With `attemptUnpackDockerCompatibility` (ADD) a source that is a tar archive is extracted into
  the destination directory instead.
"""
from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from pybuildkit.worker.contenthash.checksum import FileKey
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.worker.ops.fileops.actions import make_dirs
from pybuildkit.worker.ops.fileops.chmod import ModeSpec, parse_mode
from pybuildkit.worker.ops.fileops.copier import TreeCopier
from pybuildkit.worker.ops.fileops.errors import FileOpError, checksum_not_found, os_message
from pybuildkit.worker.ops.fileops.filters import PathFilter
from pybuildkit.worker.ops.fileops.owner import Owner
from pybuildkit.worker.ops.fileops.paths import clean_path, go_base, in_root, resolve_wildcards, shown
from pybuildkit.worker.ops.fileops.unpack import is_archive, unpack_archive


def mode_of(a: pb.FileActionCopy) -> ModeSpec | None:
    """The action's chmod: the symbolic `modeStr` wins over `mode`; -1 keeps each source's mode."""
    if a.modeStr:
        return parse_mode(a.modeStr)
    if a.mode >= 0:
        return ModeSpec(f"{a.mode:o}", a.mode & 0o7777, ())
    return None


def copy(src_root: Path, dest_root: Path, a: pb.FileActionCopy, owner: Owner | None, *,
         link: bool = False, linked: Callable[[list[FileKey]], None] | None = None) -> None:
    src_path = clean_path(a.src)
    dest_path = clean_path(a.dest)
    if not a.createDestPath and posixpath.normpath(dest_path) != "/":
        parent = in_root(dest_root, dest_path).parent
        if not os.path.lexists(parent):
            raise FileOpError(f"failed to stat {a.dest}: lstat {shown(dest_root, parent)}: no such file or directory")
    mode = mode_of(a)
    dir_mode = mode.apply(stat.S_IFDIR | 0o755) if mode is not None else 0o755
    if a.allowWildcard:
        try:
            sources = resolve_wildcards(src_root, src_path, follow_links=a.followSymlink)
        except (FileNotFoundError, NotADirectoryError):
            sources = []
        if not sources:
            if a.allowEmptyWildcard:
                return
            raise checksum_not_found(posixpath.normpath(src_path))
    else:
        sources = [src_path]
    copier = TreeCopier(dest_root, owner=owner, mode=mode, timestamp=a.timestamp,
                        path_filter=PathFilter(a.include_patterns, a.exclude_patterns),
                        always_replace=a.alwaysReplaceExistingDestPaths, link=link)
    for source in sources:
        _check_required(src_root, source, a.required_paths)
        if a.attemptUnpackDockerCompatibility and _unpacked(src_root, source, dest_root, dest_path, owner, a.timestamp):
            continue
        _copy_source(src_root, source, dest_root, dest_path, a, copier, dir_mode, owner)
    if linked is not None and copier.linked:
        linked(copier.linked)


def _check_required(src_root: Path, source: str, required: Sequence[str]) -> None:
    for path in required:
        wanted = posixpath.normpath(posixpath.join(posixpath.normpath(source), path))
        if not os.path.lexists(in_root(src_root, wanted, follow_last=False)):
            raise checksum_not_found(wanted)


def _unpacked(src_root: Path, source: str, dest_root: Path, dest_path: str, owner: Owner | None,
              timestamp: int) -> bool:
    archive = in_root(src_root, source)
    if not os.path.lexists(archive) or not is_archive(archive):
        return False
    dest = in_root(dest_root, dest_path)
    make_dirs(dest_root, dest, 0o755, owner, timestamp)
    unpack_archive(archive, dest_root, dest, owner)
    return True


def _copy_source(src_root: Path, source: str, dest_root: Path, dest_path: str, a: pb.FileActionCopy,
                 copier: TreeCopier, dir_mode: int, owner: Owner | None) -> None:
    directory_dest = dest_path.endswith("/") or dest_path.endswith("/.")
    ensure = dest_path if directory_dest else posixpath.dirname(dest_path)
    make_dirs(dest_root, in_root(dest_root, ensure), dir_mode, owner, a.timestamp)
    dest = in_root(dest_root, dest_path)
    src = in_root(src_root, source, follow_last=a.followSymlink)
    try:
        src_st = os.lstat(src)
    except FileNotFoundError:
        raise checksum_not_found(posixpath.normpath(source)) from None
    except NotADirectoryError as exc:
        raise FileOpError(os_message("lstat", posixpath.normpath(source), exc)) from exc
    src_is_dir = stat.S_ISDIR(src_st.st_mode)
    dest_exists = dest.exists()
    if (not a.dirCopyContents and src_is_dir and dest_exists) or (not src_is_dir and dest.is_dir()):
        base = go_base(source)
        if base not in ("/", "."):
            dest = dest / base
    parent = dest if a.dirCopyContents and src_is_dir and not dest_exists else dest.parent
    if parent == dest_root or dest_root in parent.parents:
        make_dirs(dest_root, parent, dir_mode, owner, a.timestamp)
    copier.copy(os.fspath(src), "", os.fspath(dest))


def clone_tree(src: Path, dest: Path) -> None:
    """Copy the whole tree `src` into the existing directory `dest` keeping everything: owners,
    modes, times, links, hardlinks, xattrs (what a FileOp needs to branch off a shared result)."""
    copier = TreeCopier(dest, owner=None, mode=None, timestamp=-1, path_filter=PathFilter((), ()),
                        always_replace=True)
    copier.copy(os.fspath(src), "", os.fspath(dest), nested=True)
