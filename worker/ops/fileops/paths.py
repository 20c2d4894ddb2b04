"""Paths of file actions, resolved inside a root directory as if it were `/`.

Every symlink met on the way resolves relative to the root (an absolute target restarts at the
root, `..` stops there), so neither a hostile `..` in an action nor a link planted by an earlier
build step can make an action read or write outside its snapshot. Messages name paths as the
build sees them (`/etc/passwd`), never the host path of the snapshot.
"""
from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from pathlib import Path

from pybuildkit.worker.fsutil.patterns import match_wildcard
from pybuildkit.worker.layer.paths import resolve_in_root


def clean_path(path: str) -> str:
    """The action's path as an absolute, cleaned path that keeps a trailing `/` or `/.`.

    The trailing marker matters: `COPY a /dir/` copies into a directory, `COPY a /dir` names
    the copy `/dir`."""
    cleaned = posixpath.normpath("/" + path.replace("\\", "/"))
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if cleaned == "/":
        return "/"
    if path.endswith("/."):
        return cleaned + "/."
    if path.endswith("/"):
        return cleaned + "/"
    return cleaned


def go_base(path: str) -> str:
    """Go's filepath.Base: the last element, trailing slashes ignored, `/` for the root."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rsplit("/", 1)[-1]


def in_root(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """The host path of `path` (absolute or relative to `/`) under `root`, links followed in the
    root; with `follow_last=False` a final symlink is the entry itself, not its target."""
    return resolve_in_root(root, posixpath.normpath("/" + path).lstrip("/"), follow_last=follow_last)


def shown(root: Path, host_path: Path | str) -> str:
    """How the build names a host path under `root`: `/a/b`."""
    rel = os.path.relpath(os.fspath(host_path), os.fspath(root))
    return "/" if rel == "." else "/" + rel


def has_wildcard_element(element: str) -> bool:
    """Go's containsWildcards: `*`, `?` or `[` not escaped by a backslash."""
    i = 0
    while i < len(element):
        char = element[i]
        if char == "\\":
            i += 2
            continue
        if char in "*?[":
            return True
        i += 1
    return False


def split_wildcards(path: str) -> tuple[str, str]:
    """(`/dir` before the first element with a wildcard, the pattern from there on)."""
    parts = [part for part in posixpath.normpath("/" + path.lstrip("/")).split("/") if part]
    for i, part in enumerate(parts):
        if has_wildcard_element(part):
            return "/" + "/".join(parts[:i]), "/".join(parts[i:])
    return "/" + "/".join(parts), ""


def resolve_wildcards(root: Path, path: str, *, follow_links: bool) -> list[str]:
    """The paths (absolute, as the build sees them) matching a wildcard path, in lexical walk
    order. Like Go's filepath.Walk below the fixed prefix: symlinked directories are not entered,
    and a matching directory is not searched further. A path without wildcards is returned as is.

    Raises FileNotFoundError when the fixed prefix does not exist."""
    base, pattern = split_wildcards(path)
    if not pattern:
        return [base]
    base_host = in_root(root, base, follow_last=follow_links)
    os.lstat(base_host)
    depth = pattern.count("/") + 1
    prefix = base.rstrip("/")
    return [f"{prefix}/{rel}" for rel in _walk_matches(base_host, "", pattern, depth)]


def _walk_matches(directory: Path, rel: str, pattern: str, depth: int) -> Iterator[str]:
    if not directory.is_dir() or directory.is_symlink():
        return
    with os.scandir(directory) as entries:
        children = sorted((entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries)
    for name, is_dir in children:
        child_rel = f"{rel}/{name}" if rel else name
        if match_wildcard(pattern, child_rel):
            yield child_rel
        elif is_dir and child_rel.count("/") + 1 < depth:
            yield from _walk_matches(directory / name, child_rel, pattern, depth)
