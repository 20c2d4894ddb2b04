"""FileOp actions on directories: mkdir, mkfile, rm, symlink (copy lives in copy.py).

Every path is resolved inside the action's root as a chroot would, so `..` and symlinks in the
tree cannot reach outside it.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.worker.fsutil.patterns import has_wildcard, match_wildcard
from pybuildkit.worker.layer.paths import clean_relative, parent_in_root, resolve_in_root
from pybuildkit.worker.userdb import lookup_group, resolve_user


class FileOpError(BuildError):
    pass


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def set_time(path: Path, timestamp: int) -> None:
    if timestamp >= 0:
        os.utime(path, ns=(timestamp, timestamp), follow_symlinks=False)


def chown(path: Path, owner: Owner | None) -> None:
    if owner is not None:
        os.lchown(path, owner.uid, owner.gid)


def resolve_owner(chown_opt: pb.ChownOpt | None, lookup_root: Path | None) -> Owner | None:
    if chown_opt is None or not (chown_opt.HasField("user") or chown_opt.HasField("group")):
        return None
    root = lookup_root or Path("/nonexistent")
    uid, gid = 0, None
    if chown_opt.HasField("user"):
        user = chown_opt.user
        if user.WhichOneof("user") == "byID":
            uid = user.byID
        else:
            resolved = resolve_user(root, user.byName.name)
            uid, gid = resolved.uid, resolved.gid
    if chown_opt.HasField("group"):
        group = chown_opt.group
        gid = group.byID if group.WhichOneof("user") == "byID" else lookup_group(root, group.byName.name)
    if gid is None:
        gid = uid if chown_opt.HasField("user") and chown_opt.user.WhichOneof("user") == "byID" else 0
    return Owner(uid, gid)


def mkdir(root: Path, a: pb.FileActionMkDir, owner: Owner | None) -> None:
    rel = clean_relative(a.path)
    parent, name = parent_in_root(root, rel)
    target = parent / name if name else root
    if not parent.exists():
        if not a.makeParents:
            raise FileOpError(f"mkdir /{rel}: no such file or directory")
        make_parents(root, parent, owner, 0o755, a.timestamp)
    if os.path.lexists(target):
        if target.is_dir():
            return
        raise FileOpError(f"mkdir /{rel}: file exists")
    target.mkdir(mode=a.mode & 0o7777)
    os.chmod(target, a.mode & 0o7777)
    chown(target, owner)
    set_time(target, a.timestamp)


def make_parents(root: Path, directory: Path, owner: Owner | None, mode: int = 0o755, timestamp: int = -1) -> None:
    """Create `directory` and its missing parents under root, each with mode, owner and time."""
    missing = []
    current = directory
    while not current.exists() and current != root:
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        path.mkdir()
        os.chmod(path, mode)
        chown(path, owner)
        set_time(path, timestamp)


def mkfile(root: Path, a: pb.FileActionMkFile, owner: Owner | None) -> None:
    rel = clean_relative(a.path)
    parent, name = parent_in_root(root, rel)
    if not parent.is_dir():
        raise FileOpError(f"mkfile /{rel}: no such file or directory")
    target = parent / name
    if target.is_dir() and not target.is_symlink():
        raise FileOpError(f"mkfile /{rel}: is a directory")
    tmp = parent / f".{name}.pbk-new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, a.mode & 0o7777)
    with os.fdopen(fd, "wb") as handle:
        handle.write(a.data)
    os.chmod(tmp, a.mode & 0o7777)
    os.replace(tmp, target)
    chown(target, owner)
    set_time(target, a.timestamp)


def rm(root: Path, a: pb.FileActionRm) -> None:
    rel = clean_relative(a.path)
    targets: list[Path]
    if a.allowWildcard and has_wildcard(rel):
        head, _, pattern = rel.rpartition("/")
        directory = resolve_in_root(root, head) if head else root
        names = sorted(os.listdir(directory)) if directory.is_dir() else []
        targets = [directory / n for n in names if match_wildcard(pattern, n)]
    else:
        parent, name = parent_in_root(root, rel)
        targets = [parent / name] if os.path.lexists(parent / name) else []
    if not targets:
        if a.allowNotFound:
            return
        raise FileOpError(f"rm /{rel}: no such file or directory")
    for target in targets:
        if target == root:
            raise FileOpError("rm /: refusing to remove the root")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()


def symlink(root: Path, a: pb.FileActionSymlink, owner: Owner | None) -> None:
    rel = clean_relative(a.newpath)
    parent, name = parent_in_root(root, rel)
    if not parent.is_dir():
        raise FileOpError(f"symlink /{rel}: no such file or directory")
    target = parent / name
    if os.path.lexists(target):
        raise FileOpError(f"symlink /{rel}: file exists")
    os.symlink(a.oldpath, target)
    chown(target, owner)
    set_time(target, a.timestamp)


def run_file_actions(fileop: pb.FileOp, inputs: Sequence[Path | None],
                     new_dir: Callable[[Path | None], Path]) -> dict[int, Path]:
    """Runs the chain; action results feed later actions by index (BUILDKIT-FACTS §2)."""
    from pybuildkit.worker.ops.fileops.copy import copy

    count = len(inputs)
    actions = list(fileop.actions)
    uses: dict[int, int] = {}
    for action in actions:
        for idx in (action.input, action.secondaryInput):
            if idx >= count:
                uses[idx - count] = uses.get(idx - count, 0) + 1
    results: dict[int, Path] = {}

    def resolve(idx: int) -> Path | None:
        if idx < 0:
            return None
        if idx < count:
            return inputs[idx]
        if idx - count not in results:
            raise FileOpError(f"invalid file action reference {idx}: not computed yet")
        return results[idx - count]

    for position, action in enumerate(actions):
        base_idx = action.input
        reuse = base_idx >= count and uses.get(base_idx - count) == 1 and actions[base_idx - count].output < 0
        work = resolve(base_idx) if reuse else new_dir(resolve(base_idx))
        assert work is not None
        kind = action.WhichOneof("action")
        detail = getattr(action, kind)
        owner = None
        if kind in ("mkdir", "mkfile", "symlink", "copy") and detail.HasField("owner"):
            lookup = _lookup_root(detail.owner, resolve, work)
            owner = resolve_owner(detail.owner, lookup)
        if kind == "mkdir":
            mkdir(work, detail, owner)
        elif kind == "mkfile":
            mkfile(work, detail, owner)
        elif kind == "rm":
            rm(work, detail)
        elif kind == "symlink":
            symlink(work, detail, owner)
        elif kind == "copy":
            source = resolve(action.secondaryInput)
            if source is None:
                raise FileOpError(f"copy {detail.src}: the source is empty (scratch)")
            copy(source, work, detail, owner)
        else:
            raise FileOpError(f"unsupported file action {kind!r}")
        results[position] = work
    return {action.output: results[i] for i, action in enumerate(actions) if action.output >= 0}


def _lookup_root(chown_opt: pb.ChownOpt, resolve: Callable[[int], Path | None], own: Path) -> Path | None:
    for part in (chown_opt.user, chown_opt.group):
        if part.WhichOneof("user") == "byName":
            idx = part.byName.input
            return own if idx < 0 else resolve(idx)
    return own
