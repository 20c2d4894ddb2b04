"""A filtered walk of a local directory, in the order and with the filters fsutil uses."""
from __future__ import annotations

import os
import posixpath
import stat as st_mod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pybuildkit.worker.fsutil.patterns import PatternMatcher


@dataclass(frozen=True)
class WalkOptions:
    include_patterns: Sequence[str] = ()
    exclude_patterns: Sequence[str] = ()
    follow_paths: Sequence[str] = ()


@dataclass(frozen=True)
class Entry:
    rel: str
    path: str
    stat: os.stat_result = field(repr=False)

    @property
    def is_dir(self) -> bool:
        return st_mod.S_ISDIR(self.stat.st_mode)


def _include_prefixes(patterns: Sequence[str]) -> list[str]:
    return [posixpath.normpath(p.lstrip("/")) for p in patterns]


def _may_contain_included(rel: str, includes: list[str], matcher: PatternMatcher) -> bool:
    for inc in includes:
        if inc.startswith(rel + "/") or any(c in inc for c in "*?["):
            return True
    return False


def _followed(root: str, paths: Sequence[str]) -> list[str]:
    """fsutil's followpaths: a path that is a symlink brings what it points at (inside the root)."""
    out: list[str] = []
    todo = [posixpath.normpath(p.lstrip("/")) for p in paths]
    while todo:
        rel = todo.pop(0)
        if rel in out:
            continue
        out.append(rel)
        full = os.path.join(root, rel)
        if os.path.islink(full):
            target = os.readlink(full)
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(rel), target).lstrip("/")))
    return out


def walk(root: Path, opts: WalkOptions) -> Iterator[Entry]:
    """Yields entries (directories before their contents, names sorted) that pass the filters."""
    excludes = PatternMatcher(opts.exclude_patterns) if opts.exclude_patterns else None
    base = os.fspath(root)
    includes = _include_prefixes(list(opts.include_patterns) + _followed(base, opts.follow_paths))
    include_matcher = PatternMatcher(includes) if includes else None

    def visit(directory: str, rel_dir: str) -> Iterator[Entry]:
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            return
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            st = entry.stat(follow_symlinks=False)
            is_dir = st_mod.S_ISDIR(st.st_mode)
            if excludes is not None and excludes.matches(rel):
                if is_dir and excludes.may_match_below(rel):
                    yield from _filtered_dir(entry.path, rel, st)
                continue
            if include_matcher is not None and not include_matcher.matches(rel):
                if is_dir and _may_contain_included(rel, includes, include_matcher):
                    yield from _filtered_dir(entry.path, rel, st)
                continue
            yield Entry(rel, entry.path, st)
            if is_dir:
                yield from visit(entry.path, rel)

    def _filtered_dir(path: str, rel: str, st: os.stat_result) -> Iterator[Entry]:
        """A directory walked only for what exceptions or includes bring back."""
        below = list(visit(path, rel))
        if below:
            yield Entry(rel, path, st)
            yield from below

    yield from visit(base, "")
