"""Who owns what a file action creates: `ChownOpt` resolved to ids, and applying owners/times.

Names are looked up in the /etc/passwd and /etc/group of a root filesystem chosen by the LLB
(`NamedUserOpt.input`), read with the same root-confined resolution as every other action path.
As in BuildKit, a name missing from those files (or missing files) means id 0, a user given by
id gets the same id as group unless a group is given, and a user given by name gets the
primary group from its passwd entry.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.worker.ops.fileops.paths import in_root

UNSET_TIMESTAMP = -1


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


def _entries(lookup_root: Path | None, name: str) -> list[list[str]]:
    if lookup_root is None:
        return []
    try:
        text = in_root(lookup_root, f"/etc/{name}").read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _user_by_name(lookup_root: Path | None, name: str) -> Owner:
    for entry in _entries(lookup_root, "passwd"):
        if len(entry) >= 4 and entry[0] == name and entry[2].isdigit() and entry[3].isdigit():
            return Owner(int(entry[2]), int(entry[3]))
    return Owner(0, 0)


def _group_by_name(lookup_root: Path | None, name: str) -> int:
    for entry in _entries(lookup_root, "group"):
        if len(entry) >= 3 and entry[0] == name and entry[2].isdigit():
            return int(entry[2])
    return 0


def named_input(chown: pb.ChownOpt) -> list[int]:
    """The `NamedUserOpt.input` indexes whose root filesystems the names are looked up in."""
    return [part.byName.input for part in (chown.user, chown.group) if part.WhichOneof("user") == "byName"]


def resolve_owner(chown: pb.ChownOpt | None, lookup_root: Path | None, *,
                  group_root: Path | None = None) -> Owner | None:
    """The ids a ChownOpt means; None when there is nothing to change (no user and no group).
    Names are looked up under `lookup_root` (a group name under `group_root` when given)."""
    if chown is None or not (chown.HasField("user") or chown.HasField("group")):
        return None
    uid = gid = 0
    if chown.HasField("user"):
        if chown.user.WhichOneof("user") == "byName":
            found = _user_by_name(lookup_root, chown.user.byName.name)
            uid, gid = found.uid, found.gid
        else:
            uid = gid = chown.user.byID
    if chown.HasField("group"):
        if chown.group.WhichOneof("user") == "byName":
            gid = _group_by_name(group_root or lookup_root, chown.group.byName.name)
        else:
            gid = chown.group.byID
    return Owner(uid, gid)


def can_chown() -> bool:
    return os.geteuid() == 0


def lchown(path: Path | str, uid: int, gid: int) -> None:
    """Change an entry's owner (never a link's target). Without privilege a copy keeps the
    caller's ids, as an unprivileged `cp -a` does; an explicit owner then fails loudly."""
    try:
        os.lchown(path, uid, gid)
    except PermissionError:
        if can_chown():
            raise


def apply_owner(path: Path | str, owner: Owner | None) -> None:
    if owner is not None:
        os.lchown(path, owner.uid, owner.gid)


def set_times(path: Path | str, timestamp: int) -> None:
    """Set atime and mtime to a UnixNano timestamp; -1 (unset) keeps the filesystem's times."""
    if timestamp != UNSET_TIMESTAMP:
        os.utime(path, ns=(timestamp, timestamp), follow_symlinks=False)


def copy_xattrs(src: str, dest: str) -> None:
    """Extended attributes of an entry, best effort as BuildKit's copy does (it logs failures):
    a user namespace cannot set `trusted.*`, many filesystems refuse some names."""
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        try:
            os.setxattr(dest, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EACCES, errno.EINVAL,
                                 errno.ENODATA):
                raise
