"""fsutil's DiffCopy packet protocol, both roles (BUILDKIT-FACTS §4, compat README §4, §6).

The sender lists a filtered tree as STAT packets, then answers REQ packets with DATA; the
receiver compares the listing with what it already holds and asks only for regular files whose
metadata changed, so a context that did not change costs one listing. The same two functions
serve FileSync (client sends its context) and FileSend (daemon sends a local output).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import stat as st
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pybuildkit.appliance.session.proto import fsutil_pb2 as fpb
from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.fsutil.walk import WalkOptions, walk

Packet = fpb.Packet
DATA_CHUNK = 32 << 10

GO_DIR, GO_SYMLINK, GO_NAMED_PIPE, GO_DEVICE = 1 << 31, 1 << 27, 1 << 25, 1 << 26
GO_CHAR_DEVICE, GO_SETUID, GO_SETGID, GO_STICKY, GO_SOCKET = 1 << 21, 1 << 23, 1 << 22, 1 << 20, 1 << 24

Send = Callable[[fpb.Packet], Awaitable[None]]
Recv = Callable[[], Awaitable["fpb.Packet | None"]]


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


def list_tree(root: Path, opts: WalkOptions) -> tuple[list[fpb.Stat], dict[int, str]]:
    """The STAT listing of `root` and, for each requestable id, the file to send."""
    stats: list[fpb.Stat] = []
    files: dict[int, str] = {}
    first_link: dict[tuple[int, int], str] = {}
    for entry in walk(root, opts):
        s = entry.stat
        if st.S_ISSOCK(s.st_mode):
            continue
        item = fpb.Stat(path=entry.rel, mode=go_mode(s.st_mode), uid=s.st_uid, gid=s.st_gid,
                        modTime=s.st_mtime_ns)
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
                files[len(stats)] = entry.path
        elif st.S_ISCHR(s.st_mode) or st.S_ISBLK(s.st_mode):
            item.devmajor, item.devminor = os.major(s.st_rdev), os.minor(s.st_rdev)
        stats.append(item)
    return stats, files


async def send_tree(root: Path, opts: WalkOptions, send: Send, recv: Recv) -> int:
    """Sender role; returns the number of bytes sent."""
    stats, files = await asyncio.to_thread(list_tree, root, opts)
    for item in stats:
        await send(Packet(type=Packet.PACKET_STAT, stat=item))
    await send(Packet(type=Packet.PACKET_STAT))
    sent = 0
    while True:
        packet = await recv()
        if packet is None or packet.type == Packet.PACKET_FIN:
            if packet is not None:
                await send(Packet(type=Packet.PACKET_FIN))
            return sent
        if packet.type == Packet.PACKET_ERR:
            raise TransferError(f"error from receiver: {packet.data.decode(errors='replace')}")
        if packet.type != Packet.PACKET_REQ:
            continue
        path = files.get(packet.ID)
        if path is None:
            raise TransferError(f"receiver asked for entry {packet.ID}, which is not a file of the listing")
        with open(path, "rb") as handle:
            while data := await asyncio.to_thread(handle.read, 1 << 20):
                for start in range(0, len(data), DATA_CHUNK):
                    await send(Packet(type=Packet.PACKET_DATA, ID=packet.ID, data=data[start:start + DATA_CHUNK]))
                sent += len(data)
        await send(Packet(type=Packet.PACKET_DATA, ID=packet.ID))


# ------------------------------------------------------------------------------- receiver


@dataclass
class ReceiveStats:
    listed: int = 0
    requested: int = 0
    bytes: int = 0
    removed: int = 0
    requested_paths: list[str] = field(default_factory=list)


def _unchanged(item: fpb.Stat, target: str, owners: bool) -> bool:
    try:
        cur = os.lstat(target)
    except OSError:
        return False
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
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise TransferError(f"invalid path {rel!r} in the file listing")
    return "/".join(parts)


async def receive_tree(dest: Path, send: Send, recv: Recv, *, owners: bool | None = None) -> ReceiveStats:
    """Receiver role: make `dest` mirror the sender's listing, fetching only changed files."""
    owners = os.geteuid() == 0 if owners is None else owners
    dest.mkdir(parents=True, exist_ok=True)
    base = os.fspath(dest)
    listing: list[tuple[int, fpb.Stat, str]] = []
    index = 0
    while True:
        packet = await recv()
        if packet is None:
            raise TransferError("the sender closed the stream before the end of its listing")
        if packet.type == Packet.PACKET_ERR:
            raise TransferError(f"error from sender: {packet.data.decode(errors='replace')}")
        if packet.type != Packet.PACKET_STAT:
            raise TransferError(f"unexpected packet {packet.type} in the file listing")
        if not packet.HasField("stat"):
            break
        rel = _clean_rel(packet.stat.path)
        listing.append((index, packet.stat, rel))
        index += 1
    stats = ReceiveStats(listed=len(listing))
    wanted: dict[int, str] = {}
    for ident, item, rel in listing:
        if _is_regular(item.mode) and not item.linkname:
            target = os.path.join(base, rel)
            if not _unchanged(item, target, owners):
                wanted[ident] = target + f".pbk-recv-{ident}"
                stats.requested_paths.append(rel)
    for ident in wanted:
        await send(Packet(type=Packet.PACKET_REQ, ID=ident))
    stats.requested = len(wanted)
    handles: dict[int, object] = {}
    pending = set(wanted)
    try:
        while pending:
            packet = await recv()
            if packet is None:
                raise TransferError("the sender closed the stream while sending files")
            if packet.type == Packet.PACKET_ERR:
                raise TransferError(f"error from sender: {packet.data.decode(errors='replace')}")
            if packet.type != Packet.PACKET_DATA or packet.ID not in pending:
                continue
            handle = handles.get(packet.ID)
            if handle is None:
                tmp = wanted[packet.ID]
                os.makedirs(os.path.dirname(tmp), exist_ok=True)
                handle = handles[packet.ID] = open(tmp, "wb")
            if packet.data:
                handle.write(packet.data)  # type: ignore[attr-defined]
                stats.bytes += len(packet.data)
            else:
                handle.close()  # type: ignore[attr-defined]
                del handles[packet.ID]
                pending.discard(packet.ID)
    finally:
        for handle in handles.values():
            handle.close()  # type: ignore[attr-defined]
    await send(Packet(type=Packet.PACKET_FIN))
    await asyncio.to_thread(_apply, base, listing, wanted, owners, stats)
    return stats


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _apply(base: str, listing: list[tuple[int, fpb.Stat, str]], wanted: dict[int, str], owners: bool,
           stats: ReceiveStats) -> None:
    keep: set[str] = set()
    dirs: list[tuple[str, fpb.Stat]] = []
    for ident, item, rel in listing:
        keep.add(rel)
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
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            os.replace(wanted[ident], target)
            os.chmod(target, mode & 0o7777)
        elif _is_regular(item.mode):
            pass  # unchanged: keep what we have
        else:
            if os.path.lexists(target):
                _remove(target)
            if st.S_ISFIFO(mode):
                os.mkfifo(target, mode & 0o7777)
            elif owners:
                os.mknod(target, mode, os.makedev(item.devmajor, item.devminor))
            else:
                continue
        if owners:
            try:
                os.lchown(target, item.uid, item.gid)
            except OSError:
                pass
        if not st.S_ISDIR(mode):
            os.utime(target, ns=(item.modTime, item.modTime), follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(base, topdown=False):
        rel_dir = os.path.relpath(dirpath, base)
        for name in filenames + dirnames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel not in keep:
                path = os.path.join(dirpath, name)
                if os.path.lexists(path):
                    _remove(path)
                    stats.removed += 1
    for target, item in reversed(dirs):
        os.utime(target, ns=(item.modTime, item.modTime), follow_symlinks=False)
