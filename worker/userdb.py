"""Resolving `user[:group]` against a root filesystem's /etc/passwd and /etc/group.

Done by reading the files ourselves, never through the host's NSS: the names must mean what the
image says they mean.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pybuildkit.solver.errors import BuildError


@dataclass(frozen=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = field(default=())
    home: str = "/"


def _read_db(rootfs: Path, name: str) -> list[list[str]]:
    path = _inside(rootfs, f"/etc/{name}")
    try:
        text = path.read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _inside(rootfs: Path, path: str) -> Path:
    """Resolve `path` inside `rootfs` without letting symlinks escape it."""
    current = Path(rootfs)
    parts = [p for p in path.split("/") if p and p != "."]
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != Path(rootfs) else current
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise BuildError(f"too many levels of symbolic links resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = Path(rootfs)
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        current = candidate
    return current


def lookup_group(rootfs: Path, group: str) -> int:
    if group.isdigit():
        return int(group)
    for entry in _read_db(rootfs, "group"):
        if len(entry) >= 3 and entry[0] == group:
            return int(entry[2])
    raise BuildError(f"unable to find group {group}: no matching entries in group file")


def resolve_user(rootfs: Path, spec: str) -> ResolvedUser:
    """Resolve a Dockerfile/LLB user string: `name`, `uid`, `name:group`, `uid:gid`.

    Follows BuildKit (and runc's libuser): a numeric user missing from /etc/passwd is allowed
    with gid 0; a named user that is missing is an error; supplementary groups come from
    /etc/group only when no group is given explicitly (an explicit group is the only group).
    """
    spec = spec or "root"
    user, _, group = spec.partition(":")
    passwd = _read_db(rootfs, "passwd")
    uid: int | None = None
    gid = 0
    home = "/"
    username = None
    for entry in passwd:
        if len(entry) < 4:
            continue
        if entry[0] == user or (user.isdigit() and entry[2] == user):
            uid, gid, username = int(entry[2]), int(entry[3]), entry[0]
            home = entry[5] if len(entry) > 5 and entry[5] else "/"
            break
    if uid is None:
        if not user.isdigit():
            raise BuildError(f"unable to find user {user}: no matching entries in passwd file")
        uid = int(user)
    # The primary group leads the supplementary list, as BuildKit (after containerd's fix for
    # CVE-2023-25173) and runc do, so a process never keeps groups it was not given.
    additional: list[int] = [gid] if not group else []
    if group:
        gid = lookup_group(rootfs, group)
        additional = [gid]
    elif username is not None:
        for entry in _read_db(rootfs, "group"):
            if len(entry) >= 4 and username in entry[3].split(",") and entry[2].isdigit():
                g = int(entry[2])
                if g not in additional:
                    additional.append(g)
    return ResolvedUser(uid=uid, gid=gid, additional_gids=tuple(additional), home=home)
