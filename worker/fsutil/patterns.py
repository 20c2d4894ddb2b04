"""Path patterns as moby/patternmatcher reads them (.dockerignore, include/exclude lists).

`*` and `?` stay within one path element, `**` crosses elements, `[...]` is a class, `\\`
escapes; `!` makes an exception; the last matching pattern wins; a pattern that matches a
directory matches everything below it.
"""
from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from pathlib import Path
from dataclasses import dataclass
from functools import lru_cache

from pybuildkit.solver.errors import BuildError


class PatternError(BuildError):
    pass


def _clean(pattern: str) -> str:
    cleaned = posixpath.normpath(pattern.strip())
    if cleaned.startswith("/"):
        cleaned = cleaned.lstrip("/") or "."
    return cleaned


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                    out.append("(.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                raise PatternError(f"syntax error in pattern {pattern!r}: unterminated [")
            body = pattern[i + 1:end]
            if body.startswith("!") or body.startswith("^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif c == "\\":
            if i + 1 >= n:
                raise PatternError(f"syntax error in pattern {pattern!r}: trailing backslash")
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out))
    except re.error as exc:
        raise PatternError(f"syntax error in pattern {pattern!r}: {exc}") from exc


@dataclass(frozen=True)
class _Pattern:
    text: str
    exclusion: bool

    def matches(self, path: str) -> bool:
        regex = _regex(self.text)
        if regex.match(path):
            return True
        parent = path
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            if regex.match(parent):
                return True
        return False


class PatternMatcher:
    def __init__(self, patterns: Sequence[str]) -> None:
        self._patterns: list[_Pattern] = []
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            exclusion = text.startswith("!")
            if exclusion:
                text = text[1:].strip()
                if not text:
                    raise PatternError('illegal exclusion pattern: "!"')
            cleaned = _clean(text)
            _regex(cleaned)
            self._patterns.append(_Pattern(cleaned, exclusion))

    @property
    def patterns(self) -> list[str]:
        return [("!" if p.exclusion else "") + p.text for p in self._patterns]

    def exclusions(self) -> bool:
        return any(p.exclusion for p in self._patterns)

    def matches(self, path: str) -> bool:
        matched = False
        for pattern in self._patterns:
            if pattern.exclusion == (not matched):
                continue  # cannot change the outcome
            if pattern.matches(path):
                matched = not pattern.exclusion
        return matched

    def may_match_below(self, directory: str) -> bool:
        """Could an exception pattern re-include something under an excluded directory?"""
        prefix = directory.rstrip("/") + "/"
        for p in self._patterns:
            if p.exclusion and (p.text.startswith(prefix) or "*" in p.text or "?" in p.text or "[" in p.text):
                return True
        return False


def has_wildcard(path: str) -> bool:
    return any(c in path for c in "*?[")


def match_wildcard(pattern: str, name: str) -> bool:
    """Go's filepath.Match: like the patterns above but without `**` or directory matching."""
    regex = _regex(pattern.replace("**", "*"))
    return bool(regex.match(name))


def glob_in_root(root: Path, pattern: str) -> list[str]:
    """Relative paths under `root` matching a wildcard path element by element (Go's filepath.Glob,
    resolving each parent inside the root so links cannot lead outside it)."""
    import os

    from pybuildkit.worker.layer.paths import resolve_in_root

    current = [""]
    for part in pattern.split("/"):
        following: list[str] = []
        for base in current:
            if not has_wildcard(part):
                following.append(f"{base}/{part}" if base else part)
                continue
            directory = resolve_in_root(root, base) if base else root
            try:
                names = sorted(os.listdir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            following += [f"{base}/{n}" if base else n for n in names if match_wildcard(part, n)]
        current = following
    return [c for c in current if os.path.lexists(resolve_in_root(root, c, follow_last=False))]
