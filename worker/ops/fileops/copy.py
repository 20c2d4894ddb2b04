"""FileActionCopy with the semantics of BuildKit's copy (fsutil's copy package).

Destination rules: several sources, a trailing `/` or an existing directory make the
destination a directory to copy into; a directory source copies itself, or only its contents
with dirCopyContents. Modes, owners and times are kept unless the action sets them; hardlinks
inside a copied tree stay hardlinks.
"""
from __future__ import annotations

import os
import shutil
import stat as st_mod
from pathlib import Path

from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.worker.process import run
from pybuildkit.worker.fsutil.patterns import PatternMatcher, glob_in_root, has_wildcard
from pybuildkit.worker.layer.paths import clean_relative, parent_in_root, resolve_in_root
from pybuildkit.worker.ops.fileops.actions import FileOpError, Owner, make_parents
from pybuildkit.worker.ops.fileops.chmod import apply_mode_str


class _Copier:
    def __init__(self, a: pb.FileActionCopy, owner: Owner | None) -> None:
        self.a = a
        self.owner = owner
        self.includes = PatternMatcher(list(a.include_patterns)) if a.include_patterns else None
        self.excludes = PatternMatcher(list(a.exclude_patterns)) if a.exclude_patterns else None
        self.inodes: dict[tuple[int, int], str] = {}

    def _meta(self, src_st: os.stat_result, target: str, is_link: bool) -> None:
        if self.owner is not None:
            os.lchown(target, self.owner.uid, self.owner.gid)
        elif os.geteuid() == 0:
            os.lchown(target, src_st.st_uid, src_st.st_gid)
        if not is_link:
            mode = st_mod.S_IMODE(src_st.st_mode)
            if self.a.mode >= 0:
                mode = self.a.mode & 0o7777
            elif self.a.modeStr:
                mode = apply_mode_str(self.a.modeStr, mode, st_mod.S_ISDIR(src_st.st_mode))
            os.chmod(target, mode)
        if self.a.timestamp >= 0:
            os.utime(target, ns=(self.a.timestamp, self.a.timestamp), follow_symlinks=False)
        else:
            os.utime(target, ns=(src_st.st_atime_ns, src_st.st_mtime_ns), follow_symlinks=False)

    def _filtered(self, rel: str, is_dir: bool) -> bool:
        """True when `rel` (relative to the copied dir) is left out by include/exclude patterns."""
        if self.excludes is not None and self.excludes.matches(rel):
            return not (is_dir and self.excludes.may_match_below(rel))
        if self.includes is not None and not self.includes.matches(rel):
            return not is_dir
        return False

    def copy_entry(self, src: str, dest: str, rel: str = "") -> bool:
        """Copy one entry; returns whether anything was written (directories that only lead
        towards include patterns are created lazily, when something inside them is copied)."""
        st = os.lstat(src)
        if st_mod.S_ISDIR(st.st_mode):
            lazy = self.includes is not None and bool(rel) and not self.includes.matches(rel)

            def ensure_dir() -> None:
                if os.path.lexists(dest) and not (os.path.isdir(dest) and not os.path.islink(dest)):
                    self._replace_check(dest, "directory")
                    os.unlink(dest)
                if not os.path.isdir(dest):
                    os.mkdir(dest, 0o755)

            if not lazy:
                ensure_dir()
            with os.scandir(src) as it:
                names = sorted(e.name for e in it)
            wrote = not lazy
            for name in names:
                child_rel = f"{rel}/{name}" if rel else name
                child_src = os.path.join(src, name)
                if self._filtered(child_rel, os.path.isdir(child_src) and not os.path.islink(child_src)):
                    continue
                if lazy and not wrote:
                    if not self._leads_anywhere(child_src, child_rel):
                        continue
                    ensure_dir()
                    wrote = True
                self.copy_entry(child_src, os.path.join(dest, name), child_rel)
            if wrote:
                self._meta(st, dest, False)
            return wrote
        if os.path.lexists(dest):
            if os.path.isdir(dest) and not os.path.islink(dest):
                self._replace_check(dest, "file")
                shutil.rmtree(dest)
            else:
                os.unlink(dest)
        if st_mod.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dest)
            self._meta(st, dest, True)
            return True
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.inodes:
            os.link(self.inodes[key], dest, follow_symlinks=False)
            return True
        if st_mod.S_ISREG(st.st_mode):
            shutil.copyfile(src, dest, follow_symlinks=False)
        elif st_mod.S_ISFIFO(st.st_mode):
            os.mkfifo(dest)
        elif st_mod.S_ISCHR(st.st_mode) or st_mod.S_ISBLK(st.st_mode):
            os.mknod(dest, st.st_mode, st.st_rdev)
        else:
            return False
        if st.st_nlink > 1:
            self.inodes[key] = dest
        self._meta(st, dest, False)
        return True

    def _leads_anywhere(self, src: str, rel: str) -> bool:
        """Whether copying `src` would write anything under the include patterns."""
        assert self.includes is not None
        if self.includes.matches(rel):
            return True
        if not (os.path.isdir(src) and not os.path.islink(src)):
            return False
        with os.scandir(src) as it:
            for entry in it:
                child_rel = f"{rel}/{entry.name}"
                if self._filtered(child_rel, entry.is_dir(follow_symlinks=False)):
                    continue
                if self._leads_anywhere(entry.path, child_rel):
                    return True
        return False

    def _replace_check(self, dest: str, kind: str) -> None:
        if not self.a.alwaysReplaceExistingDestPaths:
            existing = "directory" if os.path.isdir(dest) else "file"
            if existing != kind:
                raise FileOpError(f"cannot replace {existing} {dest.rsplit('/', 1)[-1]!r} with a {kind}"
                                  if existing == "directory" else
                                  f"cannot copy a directory over the file {dest.rsplit('/', 1)[-1]!r}")


def _is_archive(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" or head[:4] == b"\x28\xb5\x2f\xfd":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _unpack(archive: Path, dest_dir: Path, owner: Owner | None) -> None:
    import bz2
    import lzma

    from pybuildkit.worker.compression import decompress_reader
    from pybuildkit.worker.layer.unpack import apply_layer

    with open(archive, "rb") as raw:
        head = raw.read(6)
        raw.seek(0)
        if head[:3] == b"BZh":
            stream = bz2.BZ2File(raw)
        elif head[:6] == b"\xfd7zXZ\x00":
            stream = lzma.LZMAFile(raw)
        else:
            stream = decompress_reader(raw)
        apply_layer(stream, dest_dir, same_owner=owner is None)
    if owner is not None:
        for dirpath, dirnames, filenames in os.walk(dest_dir):
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), owner.uid, owner.gid)


def copy(src_root: Path, dest_root: Path, a: pb.FileActionCopy, owner: Owner | None) -> None:
    src_rel = clean_relative(a.src)
    if a.allowWildcard and has_wildcard(src_rel):
        sources = glob_in_root(src_root, src_rel)
        if not sources:
            if a.allowEmptyWildcard:
                return
            raise FileOpError(f"failed to compute cache key: failed to calculate checksum of ref: "
                              f'"/{src_rel}": not found')
        multiple = len(sources) > 1
    else:
        sources = [src_rel]
        multiple = False
    dest_rel = clean_relative(a.dest)
    dest_is_dir_hint = a.dest.endswith("/") or a.dest.endswith("/.") or multiple or not dest_rel
    copier = _Copier(a, owner)
    for rel in sources:
        src = resolve_in_root(src_root, rel, follow_last=a.followSymlink or not rel)
        if not os.path.lexists(src):
            raise FileOpError(f'failed to calculate checksum of ref: "/{rel}": not found')
        src_is_dir = src.is_dir() and not src.is_symlink()
        for required in a.required_paths:
            wanted = clean_relative(f"{rel}/{required}")
            if not os.path.lexists(resolve_in_root(src_root, wanted, follow_last=False)):
                raise FileOpError(f'failed to calculate checksum of ref: "/{wanted}": not found')
        dest_parent, dest_name = parent_in_root(dest_root, dest_rel)
        dest = dest_parent / dest_name if dest_name else dest_root
        dest_exists_dir = dest.is_dir() and not (dest.is_symlink() and not a.followSymlink)
        if dest.is_symlink() and dest.is_dir():
            dest = resolve_in_root(dest_root, dest_rel)
            dest_exists_dir = True
        if a.attemptUnpackDockerCompatibility and not src_is_dir and _is_archive(src):
            if not dest.exists():
                _mkdirs(dest_root, dest, True, owner, a.mode)
            _unpack(src, dest, owner)
            continue
        if src_is_dir and (a.dirCopyContents or (not rel)):
            _mkdirs(dest_root, dest, a.createDestPath or dest_is_dir_hint, owner, a.mode)
            if _plain(a, owner) and not any(os.scandir(dest)):
                # nothing to filter or rewrite: let cp(1) copy the tree in C (reflinks where possible);
                # the destination directory itself keeps its own owner and mode, as upstream's copy does
                before = os.stat(dest)
                run(["cp", "-a", "--reflink=auto", f"{src}/.", f"{dest}/"])
                os.chown(dest, before.st_uid, before.st_gid)
                os.chmod(dest, before.st_mode & 0o7777)
                continue
            with os.scandir(src) as it:
                names = sorted(e.name for e in it)
            for name in names:
                child = os.path.join(src, name)
                if copier._filtered(name, os.path.isdir(child) and not os.path.islink(child)):
                    continue
                copier.copy_entry(child, os.path.join(dest, name), name)
            continue
        if dest_is_dir_hint or dest_exists_dir:
            _mkdirs(dest_root, dest, a.createDestPath or dest_is_dir_hint, owner, a.mode)
            target = dest / os.path.basename(os.fspath(src) if not rel else rel)
        else:
            if not dest.parent.exists():
                if not a.createDestPath:
                    raise FileOpError(f"copy to /{dest_rel}: no such file or directory")
                _mkdirs(dest_root, dest.parent, True, owner, a.mode)
            target = dest
        copier.copy_entry(os.fspath(src), os.fspath(target))


def _plain(a: pb.FileActionCopy, owner: Owner | None) -> bool:
    return (owner is None and a.mode < 0 and not a.modeStr and a.timestamp < 0 and not a.include_patterns
            and not a.exclude_patterns and not a.attemptUnpackDockerCompatibility)


def _mkdirs(root: Path, directory: Path, allowed: bool, owner: Owner | None, mode: int = -1) -> None:
    if directory.is_dir():
        return
    if not allowed:
        raise FileOpError(f"copy to /{directory.relative_to(root)}: no such file or directory")
    make_parents(root, directory, owner, mode & 0o7777 if mode >= 0 else 0o755)
