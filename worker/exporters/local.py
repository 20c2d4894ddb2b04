"""`type=local` and `type=tar` outputs: the result's files, as a directory or one tar stream."""
from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.platforms import Platform
from pybuildkit.worker.exporters.ocitar import stream_tar
from pybuildkit.worker.snapshot.store import Snapshot, SnapshotStore


def platform_dir(platform: Platform) -> str:
    return str(platform).replace("/", "_")


def export_local(store: SnapshotStore, results: Sequence[tuple[Platform, Snapshot | None]], dest: Path,
                 *, platform_split: bool | None = None) -> None:
    split = len(results) > 1 if platform_split is None else platform_split
    dest.mkdir(parents=True, exist_ok=True)
    for platform, snap in results:
        target = dest / platform_dir(platform) if split else dest
        target.mkdir(parents=True, exist_ok=True)
        with store.view(snap) as view:
            _copy_tree(view, target)


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy contents keeping modes, times and symlinks; skip overlay whiteouts and devices."""
    for entry in os.scandir(src):
        target = dest / entry.name
        st = entry.stat(follow_symlinks=False)
        if entry.is_symlink():
            if os.path.lexists(target):
                _remove(target)
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir(follow_symlinks=False):
            if os.path.lexists(target) and not target.is_dir():
                _remove(target)
            target.mkdir(exist_ok=True)
            _copy_tree(Path(entry.path), target)
            shutil.copystat(entry.path, target, follow_symlinks=False)
        elif entry.is_file(follow_symlinks=False):
            if os.path.lexists(target):
                _remove(target)
            shutil.copy2(entry.path, target, follow_symlinks=False)
        else:
            continue
        try:
            os.lchown(target, st.st_uid, st.st_gid)
        except PermissionError:
            pass


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def export_tar(store: SnapshotStore, results: Sequence[tuple[Platform, Snapshot | None]], out: BinaryIO,
               *, platform_split: bool | None = None) -> None:
    split = len(results) > 1 if platform_split is None else platform_split
    try:
        with stream_tar(out) as tar:
            for platform, snap in results:
                prefix = platform_dir(platform) if split else ""
                with store.view(snap) as view:
                    _add_tree(tar, view, prefix)
    except BrokenPipeError as exc:
        raise BuildError("tar output: the reader closed the pipe") from exc


def _add_tree(tar: tarfile.TarFile, root: Path, prefix: str) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(prefix, rel_dir, name))
            info = tar.gettarinfo(full, arcname=rel)
            if info.ischr() and info.devmajor == 0 and info.devminor == 0:
                continue  # an overlay whiteout, not content
            info.uname = info.gname = ""
            if info.isreg():
                with open(full, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
