"""Making a directory mirror a filtered walk of another, copying only what changed.

Files are replaced by writing a new file and renaming it over the old one, never rewritten in
place, so a snapshot that hardlinks the previous mirror keeps its content.
"""
from __future__ import annotations

import os
import shutil
import stat as st_mod
from dataclasses import dataclass
from pathlib import Path
from pybuildkit.worker.fsutil.compare import same_metadata

from pybuildkit.worker.fsutil.walk import Entry, WalkOptions, walk


@dataclass
class SyncStats:
    files_copied: int = 0
    bytes_copied: int = 0
    removed: int = 0
    unchanged: int = 0


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _apply(entry: Entry, target: str, preserve_owner: bool, stats: SyncStats) -> None:
    st = entry.stat
    if st_mod.S_ISDIR(st.st_mode):
        if os.path.lexists(target) and not (os.path.isdir(target) and not os.path.islink(target)):
            _remove(target)
        os.makedirs(target, exist_ok=True)
        os.chmod(target, st_mod.S_IMODE(st.st_mode))
    elif st_mod.S_ISLNK(st.st_mode):
        tmp = target + ".pbk-sync"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.readlink(entry.path), tmp)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        os.replace(tmp, target)
    elif st_mod.S_ISREG(st.st_mode):
        tmp = target + ".pbk-sync"
        shutil.copyfile(entry.path, tmp, follow_symlinks=False)
        os.chmod(tmp, st_mod.S_IMODE(st.st_mode))
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        os.replace(tmp, target)
        stats.files_copied += 1
        stats.bytes_copied += st.st_size
    else:
        return  # sockets, fifos and devices are not build context
    if preserve_owner and os.geteuid() == 0:
        try:
            os.lchown(target, st.st_uid, st.st_gid)
        except PermissionError:
            pass
    if not st_mod.S_ISDIR(st.st_mode):
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def sync_dir(src: Path, dest: Path, opts: WalkOptions, *, preserve_owner: bool = True) -> SyncStats:
    stats = SyncStats()
    dest.mkdir(parents=True, exist_ok=True)
    base = os.fspath(dest)
    wanted: set[str] = set()
    dirs: list[tuple[str, os.stat_result]] = []
    for entry in walk(src, opts):
        wanted.add(entry.rel)
        target = os.path.join(base, entry.rel)
        try:
            current = os.lstat(target)
        except FileNotFoundError:
            current = None
        if current is not None and same_metadata(entry.stat, current, entry.path, target):
            stats.unchanged += 1
        else:
            _apply(entry, target, preserve_owner, stats)
        if entry.is_dir:
            dirs.append((target, entry.stat))
    for dirpath, dirnames, filenames in os.walk(base, topdown=False):
        rel_dir = os.path.relpath(dirpath, base)
        for name in filenames + dirnames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel not in wanted:
                path = os.path.join(dirpath, name)
                if os.path.lexists(path):
                    _remove(path)
                    stats.removed += 1
    for target, st in reversed(dirs):
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    return stats
