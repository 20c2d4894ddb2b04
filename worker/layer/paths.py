"""Resolving paths inside a root directory as if it were `/`, so nothing escapes it.

Every symlink met on the way is followed within the root: an absolute target restarts at the
root, `..` stops at the root. This is what keeps a hostile layer or copy from writing outside
its snapshot through links it planted itself.
"""
from __future__ import annotations

import os
from pathlib import Path

from pybuildkit.solver.errors import BuildError

MAX_LINKS = 255


class PathEscapeError(BuildError):
    pass


def clean_relative(name: str) -> str:
    """A tar or copy path as a relative path inside the root (`../x` and `/x` become `x`)."""
    parts: list[str] = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def resolve_in_root(root: Path, rel: str, *, follow_last: bool = True) -> Path:
    """The real location of `rel` under `root`, following links as a chroot would."""
    root_str = os.fspath(root)
    pending = [p for p in rel.split("/") if p not in ("", ".")]
    current: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = os.path.join(root_str, *current, part)
        is_last = not pending
        if (follow_last or not is_last) and os.path.islink(candidate):
            hops += 1
            if hops > MAX_LINKS:
                raise PathEscapeError(f"too many levels of symbolic links resolving {rel}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = []
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        current.append(part)
    return Path(root_str, *current)


def parent_in_root(root: Path, rel: str) -> tuple[Path, str]:
    """(resolved parent directory, final name) for creating or replacing `rel` itself."""
    clean = clean_relative(rel)
    if not clean:
        return root, ""
    head, _, name = clean.rpartition("/")
    return resolve_in_root(root, head), name
