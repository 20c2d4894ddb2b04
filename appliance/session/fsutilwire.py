"""fsutil's DiffCopy packet protocol, both roles (BUILDKIT-FACTS §4, compat README §4, §6).

The sender lists a filtered tree as STAT packets, then answers REQ packets with DATA; the
receiver compares the listing with what it already holds and asks only for regular files whose
metadata changed, so a context that did not change costs one listing. The same two functions
serve FileSync (client sends its context) and FileSend (daemon sends a local output).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat as st
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pybuildkit.appliance.session.packets import PacketStream
from pybuildkit.appliance.session.proto import batch_pb2 as bpb
from pybuildkit.appliance.session.proto import fsutil_pb2 as fpb
from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.fsutil.walk import Entry, WalkOptions, walk

Packet = fpb.Packet
DATA_CHUNK = 32 << 10  # what upstream's fsutil sends a DATA packet: what an upstream receiver expects
BATCHED_DATA_CHUNK = 1 << 20  # between pybuildkit ends a small file is one DATA packet
READ_BATCH = 4096  # REQs answered in one go
READ_GROUP_BYTES = 4 << 20  # file contents read in one thread hop
WRITE_BATCH = 8192
LIST_CHUNK = 2048  # STATs sent as one batch while the walk goes on
#: a listing's STATs, each serialized: its path, type and metadata in one comparable value
ListingEntries = frozenset[bytes]
SMALL_LISTING = 64  # a listing the receiver compares and applies on the loop, without a thread

GO_DIR, GO_SYMLINK, GO_NAMED_PIPE, GO_DEVICE = 1 << 31, 1 << 27, 1 << 25, 1 << 26
GO_CHAR_DEVICE, GO_SETUID, GO_SETGID, GO_STICKY, GO_SOCKET = 1 << 21, 1 << 23, 1 << 22, 1 << 20, 1 << 24

def go_mode(mode: int) -> int:
    out = mode & 0o777
    kind = st.S_IFMT(mode)
    out |= {st.S_IFDIR: GO_DIR, st.S_IFLNK: GO_SYMLINK, st.S_IFIFO: GO_NAMED_PIPE,
            st.S_IFBLK: GO_DEVICE, st.S_IFCHR: GO_DEVICE | GO_CHAR_DEVICE}.get(kind, 0)
    if mode & st.S_ISUID:
        out |= GO_SETUID
    if mode & st.S_ISGID:
        out |= GO_SETGID
    if mode & st.S_ISVTX:
        out |= GO_STICKY
    return out


def unix_mode(mode: int) -> int:
    out = mode & 0o777
    if mode & GO_DIR:
        out |= st.S_IFDIR
    elif mode & GO_SYMLINK:
        out |= st.S_IFLNK
    elif mode & GO_NAMED_PIPE:
        out |= st.S_IFIFO
    elif mode & GO_DEVICE:
        out |= st.S_IFCHR if mode & GO_CHAR_DEVICE else st.S_IFBLK
    elif mode & GO_SOCKET:
        out |= st.S_IFSOCK
    else:
        out |= st.S_IFREG
    if mode & GO_SETUID:
        out |= st.S_ISUID
    if mode & GO_SETGID:
        out |= st.S_ISGID
    if mode & GO_STICKY:
        out |= st.S_ISVTX
    return out


def _is_regular(mode: int) -> bool:
    return not mode & (GO_DIR | GO_SYMLINK | GO_NAMED_PIPE | GO_DEVICE | GO_SOCKET)


class TransferError(BuildError):
    pass


# ------------------------------------------------------------------------------- sender


def walk_digest(opts: WalkOptions, entries: Iterable[Entry]) -> str:
    """A digest of a walked tree as lstat saw it: each entry's path, type, mode, owner, size,
    mtime, inode and link count, and the filters. Equal digests mean an equal listing (a link
    retargeted or a file replaced is a new inode), so a receiver that offers the digest of
    the tree its mirror holds is answered without a listing. Cheaper than the STATs: no
    readlink and no protobuf."""
    summed = _walk_hash(opts)
    _sum_entries(summed, entries)
    return "sha256:" + summed.hexdigest()


def _walk_hash(opts: WalkOptions) -> Any:
    """A sha256 begun with the filters, for walk_digest's entries to follow."""
    return hashlib.sha256(repr((opts.include_patterns, opts.exclude_patterns, opts.follow_paths)).encode())


def _sum_entries(summed: Any, entries: Iterable[Entry]) -> None:
    summed.update("".join([
        f"{e.rel}\0{s.st_mode}\0{s.st_uid}\0{s.st_gid}\0{s.st_size}\0{s.st_mtime_ns}\0{s.st_ino}\0{s.st_nlink}\0{s.st_rdev}\n"
        for e in entries for s in (e.stat,)]).encode(errors="surrogateescape"))


def stat_packets(entries: Iterable[Entry], files: dict[int, str], summed: Any = None, *,
                 batched: bool = False) -> Iterator[list[fpb.Packet] | bpb.PacketBatch]:
    """The STAT packets of walked entries, LIST_CHUNK at a time, filling `files` with the
    file to send for each requestable id (built in the walk's thread, field by field: the
    cheapest way to make 20,000 of them). `batched`: each chunk is a PacketBatch, the packets
    made inside it (a list would be copied into one). `summed`, a sha256 begun by
    walk_digest's rule, takes in the entries on the way."""
    batch = bpb.PacketBatch() if batched else None
    packets: list[fpb.Packet] = []
    listed: list[Entry] = []
    count = 0
    in_chunk = 0
    first_link: dict[tuple[int, int], str] = {}
    for entry in entries:
        s = entry.stat
        if st.S_ISSOCK(s.st_mode):
            continue
        if batch is not None:
            packet = batch.packets.add(type=Packet.PACKET_STAT)
        else:
            packet = Packet(type=Packet.PACKET_STAT)
            packets.append(packet)
        item = packet.stat
        item.path = entry.rel
        item.mode = go_mode(s.st_mode)
        item.uid = s.st_uid
        item.gid = s.st_gid
        item.modTime = s.st_mtime_ns
        if st.S_ISLNK(s.st_mode):
            item.linkname = os.readlink(entry.path)
            item.size = len(os.fsencode(item.linkname))
        elif st.S_ISREG(s.st_mode):
            key = (s.st_dev, s.st_ino)
            if s.st_nlink > 1 and key in first_link:
                item.linkname = first_link[key]  # a hardlink: size 0, not requestable
            else:
                if s.st_nlink > 1:
                    first_link[key] = entry.rel
                item.size = s.st_size
                files[count] = entry.path
        elif st.S_ISCHR(s.st_mode) or st.S_ISBLK(s.st_mode):
            item.devmajor, item.devminor = os.major(s.st_rdev), os.minor(s.st_rdev)
        count += 1
        in_chunk += 1
        if summed is not None:
            listed.append(entry)
        if in_chunk == LIST_CHUNK:
            if summed is not None:
                _sum_entries(summed, listed)
                listed = []
            yield batch if batch is not None else packets
            batch = bpb.PacketBatch() if batched else None
            packets, in_chunk = [], 0
    if summed is not None:
        _sum_entries(summed, listed)
    yield batch if batch is not None else packets


async def _send_listing(root: Path, opts: WalkOptions, stream: PacketStream,
                        known_walk: str = "") -> dict[int, str] | None:
    """STAT packets out while the walk goes on in a thread: the receiver compares the first
    thousands of entries while the last are still being listed. Between pybuildkit ends the
    walk's digest ends the listing; when the receiver offered one (`known_walk`), the walk
    comes first and an equal digest is all that is sent (None is returned: no file can be
    asked for)."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[list[fpb.Packet] | bpb.PacketBatch | BaseException | None] = asyncio.Queue()
    files: dict[int, str] = {}
    summed = _walk_hash(opts) if stream.batched else None
    entries: Iterable[Entry] | None = None
    if known_walk and summed is not None:
        entries = await asyncio.to_thread(lambda: list(walk(root, opts)))
        digest = walk_digest(opts, entries)
        if digest == known_walk:
            await stream.send_unchanged(digest)
            return None
        summed = None
        stream.end_listing_with(digest)

    def produce() -> None:
        try:
            listing = stat_packets(walk(root, opts) if entries is None else entries, files, summed,
                                   batched=stream.batched)
            for chunk in listing:
                loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            loop.call_soon_threadsafe(chunks.put_nowait, None)
        except BaseException as exc:  # handed to the loop, raised there
            loop.call_soon_threadsafe(chunks.put_nowait, exc)

    walking = loop.run_in_executor(None, produce)
    try:
        while (chunk := await chunks.get()) is not None:
            if isinstance(chunk, BaseException):
                raise chunk
            if isinstance(chunk, bpb.PacketBatch):
                await stream.send_batch(chunk)
                continue
            for packet in chunk:
                await stream.send(packet)
            await stream.flush()
    finally:
        await walking
    if summed is not None:
        stream.end_listing_with("sha256:" + summed.hexdigest())
    return files


async def send_tree(root: Path, opts: WalkOptions, stream: PacketStream, *, known_walk: str = "") -> int:
    """Sender role; returns the number of bytes sent. `known_walk`: the walk digest of the
    tree the receiver holds, which it offered (batched streams only)."""
    listed = await _send_listing(root, opts, stream, known_walk)
    files = listed or {}
    if listed is not None:
        await stream.send(Packet(type=Packet.PACKET_STAT))
    sent = 0
    while True:
        packet = await stream.recv()
        if packet is None or packet.type == Packet.PACKET_FIN:
            if packet is not None:
                await stream.send(Packet(type=Packet.PACKET_FIN))
            await stream.flush()
            return sent
        if packet.type == Packet.PACKET_ERR:
            raise TransferError(f"error from receiver: {packet.data.decode(errors='replace')}")
        if packet.type != Packet.PACKET_REQ:
            continue
        wanted = [packet.ID]
        while len(wanted) < READ_BATCH and (ahead := stream.peek()) is not None and ahead.type == Packet.PACKET_REQ:
            wanted.append(ahead.ID)
            await stream.recv()
        paths = []
        for ident in wanted:
            path = files.get(ident)
            if path is None:
                raise TransferError(f"receiver asked for entry {ident}, which is not a file of the listing")
            paths.append((ident, path))
        sent += await _send_files(paths, stream)


async def _send_files(paths: list[tuple[int, str]], stream: PacketStream) -> int:
    """The DATA of each file, then its empty DATA; files are read in a thread, many at a time
    (one thread hop for a batch of small files instead of two per file)."""
    chunk = BATCHED_DATA_CHUNK if stream.batched else DATA_CHUNK
    sent = 0
    start = 0
    while start < len(paths):
        group, contents, big = await asyncio.to_thread(_read_group, paths, start)
        for (ident, _), data in zip(group, contents):
            await _send_data(stream, ident, data, chunk)
            sent += len(data)
            if big is None or ident != big[0]:
                await stream.send(Packet(type=Packet.PACKET_DATA, ID=ident))
        start += len(group)
        if big is not None:  # the group's last file is large: stream the rest of it
            ident, handle = big
            try:
                while data := await asyncio.to_thread(handle.read, READ_GROUP_BYTES):
                    await _send_data(stream, ident, data, chunk)
                    sent += len(data)
            finally:
                handle.close()
            await stream.send(Packet(type=Packet.PACKET_DATA, ID=ident))
    return sent


async def _send_data(stream: PacketStream, ident: int, data: bytes, chunk: int) -> None:
    for offset in range(0, len(data), chunk):
        await stream.send(Packet(type=Packet.PACKET_DATA, ID=ident, data=data[offset:offset + chunk]))


def _read_group(paths: list[tuple[int, str]], start: int) -> tuple[list[tuple[int, str]], list[bytes], tuple[int, BinaryIO] | None]:
    """Files from `start` on, read whole until READ_GROUP_BYTES; a file that does not fit is
    read up to that budget and returned open, as `big`, for the caller to stream on. Plain
    fds and reads sized by fstat: a buffered file object and a budget-sized read buffer cost
    more than the read of a small file itself."""
    group: list[tuple[int, str]] = []
    contents: list[bytes] = []
    budget = READ_GROUP_BYTES
    for ident, path in paths[start:]:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            want = min(os.fstat(fd).st_size, budget) + 1  # one more: a file larger than it says
            data = os.read(fd, want)
            if len(data) == want:  # it grew since fstat: read on, up to one byte over the budget
                parts, total = [data], len(data)
                while total <= budget and (more := os.read(fd, budget + 1 - total)):
                    parts.append(more)
                    total += len(more)
                data = b"".join(parts)
        except BaseException:
            os.close(fd)
            raise
        group.append((ident, path))
        contents.append(data)
        if len(data) > budget:
            return group, contents, (ident, os.fdopen(fd, "rb", buffering=0))
        os.close(fd)
        budget -= len(data)
        if budget <= 0:
            break
    return group, contents, None


# ------------------------------------------------------------------------------- receiver


@dataclass
class ReceiveStats:
    listed: int = 0
    requested: int = 0
    bytes: int = 0
    removed: int = 0
    requested_paths: list[str] = field(default_factory=list)
    #: digest of the whole listing: with nothing requested, an equal digest means the mirror
    #: is what it was after the transfer that had it (the receiver's owner may keep its checksum)
    listing_digest: str = ""
    #: {relative path: sha256 of its content} of the files fetched, hashed as they arrived, so
    #: that the receiver's owner need not read them again to checksum the tree
    file_digests: dict[str, str] = field(default_factory=dict)
    #: the listing's entries (each STAT serialized): what the owner passes as `known` next time
    entries: ListingEntries = frozenset()
    #: the sender's digest of the tree it walked (walk_digest; pybuildkit senders only): what
    #: the owner passes as `known_walk` next time, with `entries`
    walk_digest: str = ""
    #: the sender's tree was the one offered as `known_walk`: nothing was listed or changed
    unchanged: bool = False
    #: with `known`: the relative paths whose entry is new, changed or gone since that listing,
    #: all that can differ in `dest` (None without `known`)
    changed_paths: set[str] | None = None


def _unchanged(item: fpb.Stat, target: str, owners: bool, cur: os.stat_result) -> bool:
    """Whether `target`, whose lstat is `cur`, already is what the listing's `item` says."""
    mode = unix_mode(item.mode)
    if st.S_IFMT(cur.st_mode) != st.S_IFMT(mode) or (cur.st_mode & 0o7777) != (mode & 0o7777):
        return False
    if owners and (cur.st_uid, cur.st_gid) != (item.uid, item.gid):
        return False
    if st.S_ISLNK(mode):
        return os.readlink(target) == item.linkname
    if st.S_ISDIR(mode):
        return True
    return cur.st_size == item.size and cur.st_mtime_ns == item.modTime


def _clean_rel(rel: str) -> str:
    if rel and "//" not in rel and ".." not in rel and "/./" not in rel and not rel.startswith(("/", "./")) \
            and not rel.endswith(("/", "/.")) and rel != ".":
        return rel  # already clean: the common case, without the split
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise TransferError(f"invalid path {rel!r} in the file listing")
    return "/".join(parts)


async def receive_tree(dest: Path, stream: PacketStream, *, owners: bool | None = None,
                       known: ListingEntries | None = None, known_walk: str = "") -> ReceiveStats:
    """Receiver role: make `dest` mirror the sender's listing, fetching only changed files.

    `known`: the `entries` of the listing `dest` was last brought to, by its only writer (this
    function), if nothing has touched it since. Entries in it are unchanged without looking at
    the disk, and the same listing again leaves `dest` alone: a no-op rebuild of a large
    context costs no lstat and no metadata pass over the mirror. `known_walk`: that
    transfer's `walk_digest`, offered to the sender (by the caller, in the call's metadata);
    a sender whose tree has it answers `unchanged`, and `dest` is left as it is."""
    owners = os.geteuid() == 0 if owners is None else owners
    dest.mkdir(parents=True, exist_ok=True)
    base = os.fspath(dest)
    listing: list[tuple[int, fpb.Stat, str]] = []
    comparer = _Comparer(base, owners, known)
    loop = asyncio.get_running_loop()
    checks: list[asyncio.Future[None]] = []
    checked = 0
    worker: ThreadPoolExecutor | None = None  # started once the listing is long enough to need it
    try:
        while True:
            packet = await stream.recv()
            if packet is None:
                raise TransferError("the sender closed the stream before the end of its listing")
            if packet.type == Packet.PACKET_ERR:
                raise TransferError(f"error from sender: {packet.data.decode(errors='replace')}")
            if packet.type != Packet.PACKET_STAT:
                raise TransferError(f"unexpected packet {packet.type} in the file listing")
            if not packet.HasField("stat"):
                break
            listing.append((len(listing), packet.stat, _clean_rel(packet.stat.path)))
            if len(listing) - checked >= LIST_CHUNK:
                worker = worker or ThreadPoolExecutor(1, thread_name_prefix="pbk-compare")
                checks.append(loop.run_in_executor(worker, comparer.check, listing[checked:]))
                checked = len(listing)
        if worker is None and len(listing) <= SMALL_LISTING:
            comparer.check(listing)  # a Dockerfile, an ignore file: cheaper than a thread
        else:
            worker = worker or ThreadPoolExecutor(1, thread_name_prefix="pbk-compare")
            checks.append(loop.run_in_executor(worker, comparer.check, listing[checked:]))
    finally:
        try:
            await asyncio.gather(*checks)  # raises the first failure, once all are done
        finally:
            if worker is not None:
                worker.shutdown(wait=False)
    if stream.unchanged:
        if listing or not known_walk or stream.walk_digest != known_walk:
            raise TransferError("the sender called its tree unchanged, but not the one this side offered")
        await stream.send(Packet(type=Packet.PACKET_FIN))
        await stream.flush()
        return ReceiveStats(unchanged=True, walk_digest=known_walk)
    stats = ReceiveStats(listed=len(listing), listing_digest=comparer.digest(), entries=frozenset(comparer.entries),
                         walk_digest=stream.walk_digest)
    if known is not None:
        stats.changed_paths = {_clean_rel(fpb.Stat.FromString(raw).path) for raw in stats.entries ^ known}
    wanted = comparer.wanted
    stats.requested_paths = [rel for _, rel in wanted.values()]
    for ident in wanted:
        await stream.send(Packet(type=Packet.PACKET_REQ, ID=ident))
    stats.requested = len(wanted)
    writes = {ident: path for ident, (path, _) in wanted.items()}
    files = _FileWriter(writes)
    try:
        while files.pending:
            packet = await stream.recv()
            if packet is None:
                raise TransferError("the sender closed the stream while sending files")
            batch = [packet]
            while (ahead := stream.peek()) is not None and len(batch) < WRITE_BATCH:
                batch.append(ahead)
                await stream.recv()
            if len(batch) == 1:
                files.take(batch)
            else:  # a received batch: its writes in one thread hop, off the daemon's loop
                await asyncio.to_thread(files.take, batch)
    finally:
        files.close()
    stats.bytes = files.bytes
    stats.file_digests = {wanted[ident][1]: digest for ident, digest in files.digests.items()}
    await stream.send(Packet(type=Packet.PACKET_FIN))
    await stream.flush()
    if known is not None and not writes and comparer.known_hits == len(listing) == len(known):
        return stats  # the very listing `dest` already is: nothing to create, change or remove
    if len(listing) <= SMALL_LISTING:
        _apply(base, listing, writes, owners, stats)
    else:
        await asyncio.to_thread(_apply, base, listing, writes, owners, stats)
    return stats


class _Comparer:
    """The receiver's side of the listing, a chunk at a time (in one worker thread, in order,
    while the rest of the listing arrives): `wanted` is {id: (path to write, relative path)}
    of the regular files whose metadata differs, `digest()` the listing's digest (see
    ReceiveStats.listing_digest). A file that is not there yet is written in place; one that
    is there is written beside it and renamed over it, since its inode may be shared with
    snapshots (hardlinks) and must not change. Every file's parents are made real directories
    first, so that no lookup or write follows a link that an earlier listing left where this
    one has a directory."""

    def __init__(self, base: str, owners: bool, known: ListingEntries | None = None) -> None:
        self.base = base
        self.owners = owners
        self.known = known or frozenset()
        self.known_hits = 0  # entries found in `known`
        self.entries: list[bytes] = []
        self.wanted: dict[int, tuple[str, str]] = {}
        self._ready = {base}
        self._summed = hashlib.sha256()

    def check(self, entries: list[tuple[int, fpb.Stat, str]]) -> None:
        for ident, item, rel in entries:
            raw = item.SerializeToString(deterministic=True)
            self._summed.update(raw)
            self.entries.append(raw)
            if raw in self.known:  # as the mirror already has it (path, type, metadata)
                self.known_hits += 1
                continue
            if _is_regular(item.mode) and not item.linkname:
                target = os.path.join(self.base, rel)
                _real_directories(os.path.dirname(target), self._ready)
                try:
                    cur: os.stat_result | None = os.lstat(target)
                except FileNotFoundError:
                    cur = None
                if cur is None:
                    self.wanted[ident] = (target, rel)
                elif not _unchanged(item, target, self.owners, cur):
                    self.wanted[ident] = (target + f".pbk-recv-{ident}", rel)

    def digest(self) -> str:
        return self._summed.hexdigest()


def _real_directories(path: str, ready: set[str]) -> None:
    """Make `path` and its parents up to one in `ready` (the mirror's root) real directories."""
    if path in ready:
        return
    parent = os.path.dirname(path)
    if parent == path:
        raise TransferError(f"{path!r} is outside the receiving directory")
    _real_directories(parent, ready)
    try:
        found: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        found = None
    if found is not None and not st.S_ISDIR(found.st_mode):
        _remove(path)  # a file or link where the listing has a directory
        found = None
    if found is None:
        os.mkdir(path, 0o755)
    ready.add(path)


class _FileWriter:
    """Received DATA into each requested file's temporary path (plain fds: 20,000 small files
    are mostly opens and closes)."""

    def __init__(self, temps: dict[int, str]) -> None:
        self.temps = temps
        self.pending = set(temps)
        self.fds: dict[int, int] = {}
        self.hashes: dict[int, Any] = {}
        self.digests: dict[int, str] = {}
        self.bytes = 0

    def _open(self, path: str) -> int:
        """A new inode at `path` (its parents are real directories, see _Comparer): whatever is
        there, a leftover of a failed transfer or a file that appeared since, is unlinked, never
        written into, since it may be a hardlink of a snapshot's file."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return os.open(path, flags, 0o600)
        except FileExistsError:
            _remove(path)
            return os.open(path, flags, 0o600)

    def take(self, packets: list[fpb.Packet]) -> None:
        for packet in packets:
            if packet.type == Packet.PACKET_ERR:
                raise TransferError(f"error from sender: {packet.data.decode(errors='replace')}")
            if packet.type != Packet.PACKET_DATA or packet.ID not in self.pending:
                continue
            fd = self.fds.get(packet.ID)
            if fd is None:
                fd = self.fds[packet.ID] = self._open(self.temps[packet.ID])
                self.hashes[packet.ID] = hashlib.sha256()
            if packet.data:
                view = memoryview(packet.data)
                while view:
                    view = view[os.write(fd, view):]
                self.hashes[packet.ID].update(packet.data)
                self.bytes += len(packet.data)
            else:
                os.close(self.fds.pop(packet.ID))
                self.digests[packet.ID] = self.hashes.pop(packet.ID).hexdigest()
                self.pending.discard(packet.ID)

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def _has_unlisted(base: str, dirs: list[tuple[str, fpb.Stat]], children: Counter[str]) -> bool:
    """Whether a directory holds an entry the listing does not. Once the listing is applied
    every listed entry is there, so only a directory with more entries than listed has one:
    a no-op sync counts 200 directories instead of walking 20,000 names."""
    if len(os.listdir(base)) != children[""]:
        return True
    prefix = len(base) + 1
    return any(len(os.listdir(target)) != children[target[prefix:]] for target, _ in dirs)


def _remove_unlisted(base: str, keep: set[str], stats: ReceiveStats) -> None:
    for dirpath, dirnames, filenames in os.walk(base, topdown=False):
        rel_dir = os.path.relpath(dirpath, base)
        for name in filenames + dirnames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel not in keep:
                path = os.path.join(dirpath, name)
                if os.path.lexists(path):
                    _remove(path)
                    stats.removed += 1


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _apply(base: str, listing: list[tuple[int, fpb.Stat, str]], wanted: dict[int, str], owners: bool,
           stats: ReceiveStats) -> None:
    keep: set[str] = set()
    dirs: list[tuple[str, fpb.Stat]] = []
    children: Counter[str] = Counter()  # listed entries of each directory ("" the root)
    skipped = False
    for ident, item, rel in listing:
        keep.add(rel)
        children[rel.rpartition("/")[0]] += 1
        target = os.path.join(base, rel)
        mode = unix_mode(item.mode)
        if st.S_ISDIR(mode):
            if os.path.lexists(target) and not (os.path.isdir(target) and not os.path.islink(target)):
                _remove(target)
            os.makedirs(target, exist_ok=True)
            os.chmod(target, mode & 0o7777)
            dirs.append((target, item))
        elif st.S_ISLNK(mode):
            if os.path.lexists(target) and not (os.path.islink(target) and os.readlink(target) == item.linkname):
                _remove(target)
            if not os.path.lexists(target):
                os.symlink(item.linkname, target)
        elif _is_regular(item.mode) and item.linkname:  # hardlink to an earlier entry
            if os.path.lexists(target):
                _remove(target)
            os.link(os.path.join(base, _clean_rel(item.linkname)), target)
            continue
        elif ident in wanted:
            if wanted[ident] != target:  # written beside what was there
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                os.replace(wanted[ident], target)
            os.chmod(target, mode & 0o7777)
        elif _is_regular(item.mode):
            continue  # unchanged, owner and times included: nothing to do
        else:
            if os.path.lexists(target):
                _remove(target)
            if st.S_ISFIFO(mode):
                os.mkfifo(target, mode & 0o7777)
            elif owners:
                os.mknod(target, mode, os.makedev(item.devmajor, item.devminor))
            else:
                skipped = True  # a device node only root makes: listed, not here
                continue
        if owners:
            try:
                os.lchown(target, item.uid, item.gid)
            except OSError:
                pass
        if not st.S_ISDIR(mode):
            os.utime(target, ns=(item.modTime, item.modTime), follow_symlinks=False)
    if skipped or _has_unlisted(base, dirs, children):
        _remove_unlisted(base, keep, stats)
    for target, item in reversed(dirs):
        os.utime(target, ns=(item.modTime, item.modTime), follow_symlinks=False)
