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
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.fsutil.patterns import PatternMatcher, glob_in_root, has_wildcard
from pybuildkit.worker.layer.paths import clean_relative, resolve_in_root

_BIG = 1 << 20
TREES_KEPT = 64  # trees whose directory digests are kept (see keep_tree)
KEPT_CHANGES = 2048  # more changed paths than this: the kept digests are dropped, not pruned


class ChecksumError(BuildError):
    pass


def _header(st: os.stat_result, link: str) -> bytes:
    kind = st_mod.S_IFMT(st.st_mode)
    return f"{kind:o}:{st_mod.S_IMODE(st.st_mode):o}:{st.st_uid}:{st.st_gid}:{link}".encode()


FileKey = tuple[int, int, int, int, int]
#: (the key of an inode before it was hardlinked, time.time_ns() after the link)
LinkClaim = tuple[FileKey, int]


def _tree_key(root: Path | str) -> str:
    return os.fspath(root).rstrip("/") or "/"


def _file_key(st: os.stat_result) -> FileKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ChecksumCache:
    """Remembers file content digests by (device, inode, size, mtime, ctime) across calls.

    `known` seeds it (a persisted memo from earlier processes); `fresh()` returns what was
    hashed since, for the owner to persist. Any write to a file changes its ctime, so a stale
    entry cannot be hit.
    """

    def __init__(self, max_entries: int = 400_000, known: dict[FileKey, str] | None = None,
                 claims: Iterable[LinkClaim] = (),
                 load: Callable[[], tuple[dict[FileKey, str], Iterable[LinkClaim]]] | None = None) -> None:
        """`claims`: the `pending_claims()` of an earlier process over the same `known` memo.
        `load` gives both when the memo is first needed instead (a daemon's start: a no-op
        rebuild of a large context never reads 20,000 rows it does not need)."""
        self._files: dict[FileKey, str] = {}
        self._new: dict[FileKey, str] = {}
        self._seen: dict[str, FileKey] = {}  # path -> its key when last checksummed, for relinked_under()
        self._latest: dict[tuple[int, int], FileKey] = {}  # (dev, ino) -> newest key
        self._carried: dict[tuple[int, int], FileKey] = {}  # relinked keys not yet persisted
        #: (dev, ino) -> (its key before it was linked, when the link was claimed): linked, not looked up since
        self._relinked: dict[tuple[int, int], LinkClaim] = {}
        self._max = max_entries
        self._lock = threading.Lock()
        self._trees: dict[str, dict[str, str]] = {}  # kept root -> {relative directory: digest}
        self._load: Callable[[], tuple[dict[FileKey, str], Iterable[LinkClaim]]] | None = \
            load if load is not None else (lambda: (dict(known or {}), claims))

    @property
    def loaded(self) -> bool:
        """Whether the memo given at construction was needed (and so may have changed)."""
        return self._load is None

    def _ensure_loaded(self) -> None:
        """Under the lock: the memo and claims given at construction, read on first use."""
        if self._load is None:
            return
        load, self._load = self._load, None
        known, claims = load()
        self._files = known
        self._latest = {k[:2]: k for k in known}
        self._relinked = {claim[0][:2]: claim for claim in claims}

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
            self._ensure_loaded()
            self._files.update(learned)
            self._new.update(learned)
            self._seen.update(seen)
            self._latest.update((key[:2], key) for key in learned)

    def kept_tree(self, root: Path) -> dict[str, str] | None:
        """A copy of the directory digests kept for `root`, to save with its mirror's state."""
        with self._lock:
            kept = self._trees.get(_tree_key(root))
            return dict(kept) if kept is not None else None

    def take_tree(self, root: Path) -> dict[str, str] | None:
        """The directory digests kept for `root` (see keep_tree), no longer kept: a writer about
        to change `root` takes them, so that a write that fails half-way leaves none."""
        with self._lock:
            return self._trees.pop(_tree_key(root), None)

    def keep_tree(self, root: Path, digests: dict[str, str] | None, changed: Iterable[str] | None) -> None:
        """Keep the digests of `root`'s directories from one checksum of the whole of it to the
        next, for a tree whose only writer reports what it changes (a local mirror: its sync
        compares listings). `digests`: as taken before the writer changed the relative paths
        `changed`; those paths, what was below them and the directories above them are
        forgotten. None for either: start afresh. A context with one file changed is then
        checksummed along that file's path, not over its 20,000 files."""
        memo = {} if digests is None or changed is None else digests
        changed = list(changed or ())
        if len(changed) > KEPT_CHANGES:
            memo = {}
        for rel in changed:
            memo.pop(rel, None)
            below = rel + "/"
            for key in [k for k in memo if k.startswith(below)]:
                del memo[key]
            while rel:
                rel = rel.rpartition("/")[0]
                memo.pop(rel, None)
        with self._lock:
            self._trees.pop(_tree_key(root), None)
            self._trees[_tree_key(root)] = memo
            for old in list(self._trees)[:-TREES_KEPT]:
                del self._trees[old]

    def relinked(self, keys: Iterable[FileKey]) -> None:
        """Each inode, whose key this was just before (COPY's copier stat'ed each file it then
        linked), got another hardlink: its ctime moved and its content did not, so the digest
        of its newest known key carries over to its key after the link. The layer and mirror
        files that local sources and COPY share by hardlinks are then not hashed again. Nothing
        is looked at now: the digest carries when the inode is next checksummed under any of
        its names (see _carry)."""
        claimed = time.time_ns()  # after the links: their ctimes are not later
        with self._lock:
            self._ensure_loaded()
            self._bound_claims()
            for key in keys:
                ident = key[:2]
                earlier = self._relinked.get(ident)
                if earlier is not None and key[2:4] == earlier[0][2:4] and key[4] <= earlier[1]:
                    self._relinked[ident] = (earlier[0], claimed)  # only linked since the earlier claim
                elif self._latest.get(ident) == key:
                    self._relinked[ident] = (key, claimed)
                else:
                    self._relinked.pop(ident, None)  # changed since its digest: nothing carries

    def relinked_under(self, root: Path) -> None:
        """`relinked` for every file checksummed below `root`, a tree that nothing has written
        since (a local mirror, just hardlinked into its snapshot)."""
        prefix = os.fspath(root).rstrip("/") + "/"
        claimed = time.time_ns()
        with self._lock:
            self._ensure_loaded()
            self._bound_claims()
            for path, key in self._seen.items():
                if not path.startswith(prefix):
                    continue
                ident = key[:2]
                earlier = self._relinked.get(ident)
                if earlier is not None:
                    self._relinked[ident] = (earlier[0], claimed)
                elif (latest := self._latest.get(ident)) is not None:
                    self._relinked[ident] = (latest, claimed)

    def _bound_claims(self) -> None:
        if len(self._relinked) > self._max:
            self._relinked.clear()

    def _carry(self, key: FileKey) -> str | None:
        """Under the lock: the digest a claimed link carries to the inode's new `key`: only if
        the inode's newest known key is still the claim's, its size and mtime are the same and
        its ctime is not later than the claim (an inode changed or reused since is hashed)."""
        claim = self._relinked.pop(key[:2], None)
        if claim is None:
            return None
        before, claimed = claim
        digest = self._files.get(before)
        if digest is None or self._latest.get(key[:2]) != before or key[2:4] != before[2:4] or key[4] > claimed:
            return None  # changed (or never hashed) since: no digest carries
        self._files[key] = digest
        self._latest[key[:2]] = key
        self._carried[key[:2]] = key  # persisted at close (carried_over), not with a build's fresh digests
        return digest

    def carried_over(self) -> dict[FileKey, str]:
        """The digests `relinked` carried that are still their inode's newest, for the owner to
        persist once, when it closes (20,000 rows at every build cost more than they save)."""
        with self._lock:
            self._ensure_loaded()
            keys, self._carried = list(self._carried.values()), {}
            return {key: self._files[key] for key in keys
                    if self._latest.get(key[:2]) == key and key in self._files}

    def pending_claims(self) -> list[LinkClaim]:
        """The link claims not looked up yet, for the owner to hand to the next process with
        the memo: a daemon that starts again (each --daemonless build) would otherwise hash
        again every file a COPY linked."""
        with self._lock:
            self._ensure_loaded()
            return list(self._relinked.values())

    def _file_digest(self, path: str, st: os.stat_result) -> str:
        key = _file_key(st)
        with self._lock:
            self._ensure_loaded()
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

    def _node(self, path: str, matcher: PatternMatcher | None, include: PatternMatcher | None, rel: str,
              dirs: dict[str, str] | None = None) -> str:
        """`dirs`: the kept directory digests of the tree whose root `rel` is relative to."""
        if dirs is not None and (kept := dirs.get(rel)) is not None:
            return kept
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
                h.update(self._node(os.path.join(path, name), matcher, include, child_rel, dirs).encode())
            if dirs is not None:
                dirs[rel] = h.hexdigest()
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
        dirs = None
        if not rel and excludes is None and includes is None:  # the whole of a kept tree
            with self._lock:
                dirs = self._trees.get(_tree_key(root))
        return self._node(os.fspath(target), excludes, includes, "", dirs)


def checksum(root: Path, path: str, **options) -> str:
    """One-off checksum without a shared memo (tests, tools)."""
    return ChecksumCache().checksum(root, path, **options)
