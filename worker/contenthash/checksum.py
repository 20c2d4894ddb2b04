"""Content checksums of paths in a tree: the cache keys of what a step actually reads.

A file's checksum covers its content and tar-header-like metadata (type, permissions, owner,
link target) but not its mtime, so touching a file without changing it keeps cache hits, as
BuildKit's contenthash does. A directory's checksum combines its own header with its children's
names and checksums.
"""
from __future__ import annotations

import hashlib
import os
import stat as st_mod
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.fsutil.patterns import PatternMatcher, glob_in_root, has_wildcard
from pybuildkit.worker.layer.paths import clean_relative, resolve_in_root

_BIG = 1 << 20


class ChecksumError(BuildError):
    pass


def _header(st: os.stat_result, link: str) -> bytes:
    kind = st_mod.S_IFMT(st.st_mode)
    return f"{kind:o}:{st_mod.S_IMODE(st.st_mode):o}:{st.st_uid}:{st.st_gid}:{link}".encode()


FileKey = tuple[int, int, int, int, int]


def _file_key(st: os.stat_result) -> FileKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ChecksumCache:
    """Remembers file content digests by (device, inode, size, mtime, ctime) across calls.

    `known` seeds it (a persisted memo from earlier processes); `fresh()` returns what was
    hashed since, for the owner to persist. Any write to a file changes its ctime, so a stale
    entry cannot be hit.
    """

    def __init__(self, max_entries: int = 400_000, known: dict[FileKey, str] | None = None) -> None:
        self._files: dict[FileKey, str] = dict(known or {})
        self._new: dict[FileKey, str] = {}
        self._seen: dict[str, FileKey] = {}  # path -> its key when last checksummed, for relinked_under()
        self._latest: dict[tuple[int, int], FileKey] = {k[:2]: k for k in self._files}  # (dev, ino) -> newest key
        self._carried: dict[tuple[int, int], FileKey] = {}  # relinked keys not yet persisted
        self._relinked: dict[tuple[int, int], str] = {}  # (dev, ino) -> a path: linked, not looked up since
        self._max = max_entries
        self._lock = threading.Lock()

    def fresh(self) -> dict[FileKey, str]:
        with self._lock:
            out, self._new = self._new, {}
        return out

    def invalidate(self, root: Path) -> None:
        return  # keys are inode-based: a replaced or modified file gets a new key by itself

    def learn(self, root: Path, digests: dict[str, str]) -> None:
        """Digests of files below `root` ({relative path: sha256 of the content}) that their
        writer computed as it wrote them (the context transfer): checksumming the tree then
        reads none of them."""
        base = os.fspath(root).rstrip("/")
        learned: dict[FileKey, str] = {}
        seen: dict[str, FileKey] = {}
        for rel, digest in digests.items():
            path = f"{base}/{rel}"
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if st_mod.S_ISREG(st.st_mode):
                key = _file_key(st)
                learned[key] = digest
                seen[path] = key
        with self._lock:
            self._files.update(learned)
            self._new.update(learned)
            self._seen.update(seen)
            self._latest.update((key[:2], key) for key in learned)

    def relinked(self, entries: Iterable[tuple[str, int, int]]) -> None:
        """Each (path, device, inode) got another hardlink: its ctime moved and its content did
        not, so the digest of its inode's newest key carries over to the new one (same size and
        mtime). The layer and mirror files that local sources and COPY share by hardlinks are
        then not hashed again. Nothing is looked at now (COPY's copier stat'ed each file it
        linked): the digest carries when the inode is next checksummed under any of its names,
        after comparing its size and mtime then, or at `carried_over`."""
        with self._lock:
            if len(self._relinked) > self._max:
                self._relinked.clear()
            self._relinked.update(((dev, ino), path) for path, dev, ino in entries)

    def _carry(self, key: FileKey) -> str | None:
        """Under the lock: the digest of a relinked inode's newest key for its new `key`."""
        if self._relinked.pop(key[:2], None) is None:
            return None
        old = self._latest.get(key[:2])
        digest = self._files.get(old) if old is not None else None
        if old is None or digest is None or old[2:4] != key[2:4]:
            return None  # rewritten since (or never hashed): no digest carries
        self._files[key] = digest
        self._latest[key[:2]] = key
        self._carried[key[:2]] = key  # persisted at close (carried_over), not with a build's fresh digests
        return digest

    def carried_over(self) -> dict[FileKey, str]:
        """The digests `relinked` carried that are still their inode's newest, for the owner
        to persist once, when it closes: 20,000 rows at every build cost more than they save,
        but a daemon that starts again (each --daemonless build) would hash the context again."""
        with self._lock:
            waiting = list(self._relinked.items())
        for (dev, ino), path in waiting:  # relinked, not looked up since: their keys now
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (dev, ino):
                with self._lock:
                    self._carry(_file_key(st))
        with self._lock:
            keys, self._carried = list(self._carried.values()), {}
            return {key: self._files[key] for key in keys
                    if self._latest.get(key[:2]) == key and key in self._files}

    def relinked_under(self, root: Path) -> None:
        """`relinked` for every file checksummed below `root` (a tree just hardlinked elsewhere)."""
        prefix = os.fspath(root).rstrip("/") + "/"
        with self._lock:
            entries = [(p, key[0], key[1]) for p, key in self._seen.items() if p.startswith(prefix)]
        self.relinked(entries)

    def _file_digest(self, path: str, st: os.stat_result) -> str:
        key = _file_key(st)
        with self._lock:
            found = self._files.get(key)
            if found is None and self._relinked:
                found = self._carry(key)
            if len(self._seen) > self._max:
                self._seen.clear()
                self._latest.clear()
                self._relinked.clear()
            self._seen[path] = key
            if found is not None:
                self._latest[key[:2]] = key
        if found is not None:
            return found
        h = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_BIG):
                h.update(chunk)
        digest = h.hexdigest()
        with self._lock:
            if len(self._files) > self._max:
                self._files.clear()
            self._files[key] = digest
            self._new[key] = digest
            self._latest[key[:2]] = key
        return digest

    def _node(self, path: str, matcher: PatternMatcher | None, include: PatternMatcher | None, rel: str) -> str:
        st = os.lstat(path)
        h = hashlib.sha256()
        if st_mod.S_ISLNK(st.st_mode):
            h.update(_header(st, os.readlink(path)))
        elif st_mod.S_ISREG(st.st_mode):
            h.update(_header(st, ""))
            h.update(self._file_digest(path, st).encode())
        elif st_mod.S_ISDIR(st.st_mode):
            h.update(_header(st, ""))
            with os.scandir(path) as it:
                names = sorted(e.name for e in it)
            for name in names:
                child_rel = f"{rel}/{name}" if rel else name
                if matcher is not None and matcher.matches(child_rel):
                    continue
                if include is not None and not include.matches(child_rel) and not os.path.isdir(
                        os.path.join(path, name)):
                    continue
                h.update(name.encode() + b"\0")
                h.update(self._node(os.path.join(path, name), matcher, include, child_rel).encode())
        else:
            h.update(_header(st, f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}"))
        return h.hexdigest()

    def checksum(self, root: Path, path: str, *, wildcard: bool = False, follow_links: bool = True,
                 include_patterns: Sequence[str] = (), exclude_patterns: Sequence[str] = ()) -> str:
        rel = clean_relative(path)
        excludes = PatternMatcher(exclude_patterns) if exclude_patterns else None
        includes = PatternMatcher(include_patterns) if include_patterns else None
        if wildcard and has_wildcard(rel):
            matches = glob_in_root(root, rel)
            h = hashlib.sha256()
            for match in matches:
                h.update(match.encode() + b"\0")
                h.update(self._one(root, match, follow_links, excludes, includes).encode())
            return "sha256:" + h.hexdigest()
        return "sha256:" + self._one(root, rel, follow_links, excludes, includes)

    def _one(self, root: Path, rel: str, follow_links: bool, excludes, includes) -> str:
        target = resolve_in_root(root, rel, follow_last=follow_links)
        if not os.path.lexists(target):
            raise ChecksumError(f'failed to calculate checksum of ref: "/{rel}": not found')
        return self._node(os.fspath(target), excludes, includes, "")


def checksum(root: Path, path: str, **options) -> str:
    """One-off checksum without a shared memo (tests, tools)."""
    return ChecksumCache().checksum(root, path, **options)
