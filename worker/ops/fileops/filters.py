"""Include and exclude patterns of a copy, relative to the copied directory.

An entry is copied when it matches an include pattern (if there are any) and no exclude pattern
(moby/patternmatcher semantics: a pattern matching a directory matches all below it, `!` makes
an exception, the last match wins). A directory that is not copied itself is still searched when
something below it could be, so `a/*/c` copies `a/b/c` with its parents; directories that cannot
lead anywhere are skipped without being read, which keeps an excluded `node_modules` cheap.
"""
from __future__ import annotations

from collections.abc import Sequence

from pybuildkit.worker.fsutil.patterns import PatternMatcher, match_wildcard


def _could_match_below(patterns: Sequence[str], directory: str) -> bool:
    """Whether any of `patterns` could match a path strictly below `directory`."""
    parts = directory.split("/")
    for pattern in patterns:
        elements = pattern.split("/")
        for i, part in enumerate(parts):
            if i >= len(elements) or "**" in elements[i]:
                return True
            if not match_wildcard(elements[i], part):
                break
        else:
            if len(elements) > len(parts):
                return True
    return False


class PathFilter:
    def __init__(self, include_patterns: Sequence[str], exclude_patterns: Sequence[str]) -> None:
        self._includes = PatternMatcher(list(include_patterns)) if include_patterns else None
        self._excludes = PatternMatcher(list(exclude_patterns)) if exclude_patterns else None
        self._include_texts = [p for p in self._includes.patterns if not p.startswith("!")] if self._includes else []
        self._exception_texts = ([p[1:] for p in self._excludes.patterns if p.startswith("!")]
                                 if self._excludes else [])

    @property
    def active(self) -> bool:
        return self._includes is not None or self._excludes is not None

    def included(self, rel: str) -> bool:
        if self._includes is not None and not self._includes.matches(rel):
            return False
        return not (self._excludes is not None and self._excludes.matches(rel))

    def worth_searching(self, rel: str) -> bool:
        """For a directory that is not copied itself: could anything below it be?"""
        if self._includes is not None and not self._includes.matches(rel):
            if not _could_match_below(self._include_texts, rel):
                return False
        if self._excludes is not None and self._excludes.matches(rel):
            return _could_match_below(self._exception_texts, rel)
        return True
