"""fsutil's DiffCopy batched between two pybuildkit ends: the same tree arrives as with
upstream's one-packet-a-message stream, in a small fraction of the gRPC messages, and an
unchanged tree costs only its listing (real grpc.aio over a unix socket)."""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from pybuildkit.appliance.session.fsutilwire import ReceiveStats, TransferError, receive_tree, send_tree
from pybuildkit.appliance.session.packets import PacketStream, message_type, serialize
from pybuildkit.worker.fsutil.walk import WalkOptions

pytestmark = pytest.mark.integration

FILES = 600


def _tree(root: Path) -> None:
    for i in range(FILES):
        d = root / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_bytes(f"file {i}\n".encode() * (i % 50 + 1))
    (root / "big.bin").write_bytes(os.urandom(5 << 20))  # larger than one read group and one batch
    (root / "d0" / "exe").write_bytes(b"#!/bin/sh\n")
    (root / "d0" / "exe").chmod(0o755)
    os.symlink("d0/exe", root / "link")
    os.link(root / "d1" / "f1.txt", root / "hard.txt")


def _snapshot(root: Path) -> dict[str, tuple[int, bytes | str, int]]:
    out: dict[str, tuple[int, bytes | str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            content: bytes | str = os.readlink(path) if path.is_symlink() else (
                b"" if path.is_dir() else path.read_bytes())
            out[str(path.relative_to(root))] = (st.st_mode, content, st.st_mtime_ns if not path.is_dir() else 0)
    return out


async def _transfer(src: Path, dest: Path, batched: bool, sock: Path,
                    known: frozenset[bytes] | None = None, known_walk: str = "",
                    offered: str | None = None) -> tuple[ReceiveStats, int]:
    """Serve `src` with send_tree, receive it into `dest`; returns the stats and the number of
    gRPC messages the sender wrote. The receiver offers `known_walk`; the sender is told
    `offered` (the same unless a test makes them differ)."""
    written = 0

    async def serve(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        async def write(message: Any) -> None:
            nonlocal written
            written += 1
            await context.write(message)

        await send_tree(src, WalkOptions(), PacketStream(context.read, write, batched=batched),
                        known_walk=known_walk if offered is None else offered)

    kind = message_type(batched)
    handler = grpc.stream_stream_rpc_method_handler(serve, request_deserializer=kind.FromString,
                                                    response_serializer=serialize)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.FileSync", {"DiffCopy": handler}),))
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
            call = channel.stream_stream("/t.FileSync/DiffCopy", request_serializer=serialize,
                                         response_deserializer=kind.FromString)()
            stream = PacketStream(call.read, call.write, batched=batched)
            stats = await receive_tree(dest, stream, known=known, known_walk=known_walk)
            assert await stream.recv() is not None  # the sender's FIN
            await call.done_writing()
            assert await call.code() == grpc.StatusCode.OK
    finally:
        await server.stop(None)
    return stats, written


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    _tree(src)
    return src


def test_a_batched_copy_delivers_the_tree_upstreams_stream_delivers(source: Path, tmp_path: Path) -> None:
    asyncio.run(_transfer(source, tmp_path / "plain", False, tmp_path / "a.sock"))
    asyncio.run(_transfer(source, tmp_path / "batched", True, tmp_path / "b.sock"))
    assert _snapshot(tmp_path / "batched") == _snapshot(tmp_path / "plain") == _snapshot(source)


def test_a_batched_copy_sends_a_small_fraction_of_the_messages(source: Path, tmp_path: Path) -> None:
    _, plain = asyncio.run(_transfer(source, tmp_path / "plain", False, tmp_path / "a.sock"))
    _, batched = asyncio.run(_transfer(source, tmp_path / "batched", True, tmp_path / "b.sock"))
    assert plain > 3 * FILES  # a STAT, a DATA and an empty DATA a file, 32 KiB DATAs for big.bin
    assert batched < 20


def test_a_batched_copy_of_an_unchanged_tree_requests_nothing(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    asyncio.run(_transfer(source, dest, True, tmp_path / "a.sock"))
    (source / "d3" / "f3.txt").write_bytes(b"changed\n")
    again, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "b.sock"))
    assert again.requested_paths == ["d3/f3.txt"]
    unchanged, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "c.sock"))
    assert unchanged.requested == 0 and unchanged.bytes == 0
    assert _snapshot(dest) == _snapshot(source)


def test_a_changed_file_gets_a_new_inode_and_its_old_links_keep_the_old_content(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    asyncio.run(_transfer(source, dest, True, tmp_path / "a.sock"))
    os.link(dest / "d2" / "f2.txt", tmp_path / "snapshot-link")  # as a local-source snapshot holds it
    (source / "d2" / "f2.txt").write_bytes(b"new content\n")
    asyncio.run(_transfer(source, dest, True, tmp_path / "b.sock"))
    assert (dest / "d2" / "f2.txt").read_bytes() == b"new content\n"
    assert (tmp_path / "snapshot-link").read_bytes() == b"file 2\n" * 3


def test_a_link_an_earlier_listing_left_is_not_followed_where_a_directory_is_now(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    os.symlink(str(outside), src / "a")
    dest = tmp_path / "dest"
    asyncio.run(_transfer(src, dest, True, tmp_path / "a.sock"))
    assert (dest / "a").is_symlink()
    (src / "a").unlink()
    (src / "a").mkdir()
    (src / "a" / "f").write_bytes(b"inside\n")
    asyncio.run(_transfer(src, dest, True, tmp_path / "b.sock"))
    assert list(outside.iterdir()) == []
    assert not (dest / "a").is_symlink() and (dest / "a" / "f").read_bytes() == b"inside\n"


def test_the_listing_a_mirror_already_is_leaves_it_untouched(source: Path, tmp_path: Path) -> None:
    """Given the entries of its last transfer, an unchanged tree needs no look at the mirror:
    no lstat, no chmod of its directories (their ctime stays)."""
    dest = tmp_path / "mirror"
    first, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "a.sock"))
    before = {d.name: d.stat().st_ctime_ns for d in dest.iterdir() if d.is_dir()}
    again, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "b.sock", known=first.entries))
    assert again.requested == 0 and again.listing_digest == first.listing_digest
    assert {d.name: d.stat().st_ctime_ns for d in dest.iterdir() if d.is_dir()} == before
    assert _snapshot(dest) == _snapshot(source)


def test_with_a_known_listing_changes_still_arrive_and_removals_go(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    first, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "a.sock"))
    (source / "d3" / "f3.txt").write_bytes(b"changed\n")
    os.utime(source / "d3" / "f3.txt", ns=(1, 1))
    (source / "d4" / "f4.txt").unlink()
    (source / "d5" / "new.txt").write_bytes(b"new\n")
    again, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "b.sock", known=first.entries))
    assert sorted(again.requested_paths) == ["d3/f3.txt", "d5/new.txt"]
    assert _snapshot(dest) == _snapshot(source)


def test_a_tree_whose_walk_the_receiver_offers_is_answered_unchanged_in_one_message(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    first, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "a.sock"))
    assert first.walk_digest.startswith("sha256:")
    again, written = asyncio.run(_transfer(source, dest, True, tmp_path / "b.sock", known_walk=first.walk_digest))
    assert again.unchanged and again.listed == 0 and again.requested == 0
    assert written == 2  # the unchanged batch and the answering FIN
    assert _snapshot(dest) == _snapshot(source)


def test_a_changed_tree_is_listed_in_full_despite_the_offer(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    first, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "a.sock"))
    (source / "d4" / "f4.txt").write_bytes(b"changed\n")
    again, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "b.sock", known_walk=first.walk_digest))
    assert not again.unchanged
    assert again.requested_paths == ["d4/f4.txt"]
    assert again.walk_digest.startswith("sha256:") and again.walk_digest != first.walk_digest
    assert _snapshot(dest) == _snapshot(source)


def test_a_file_replaced_by_another_with_the_same_size_and_time_changes_the_walk(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    first, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "a.sock"))
    target = source / "d5" / "f5.txt"
    before = target.stat()
    replacement = source / "replacement"
    replacement.write_bytes(b"x" * before.st_size)
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, target)  # a new inode with the old file's size and mtime
    again, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "b.sock", known_walk=first.walk_digest))
    assert not again.unchanged


def test_an_unchanged_answer_the_receiver_did_not_offer_is_refused(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    first, _ = asyncio.run(_transfer(source, dest, True, tmp_path / "a.sock"))
    (dest / "kept").write_bytes(b"mine\n")
    with pytest.raises(TransferError, match="unchanged"):
        asyncio.run(_transfer(source, dest, True, tmp_path / "b.sock", offered=first.walk_digest))
    assert (dest / "kept").read_bytes() == b"mine\n"  # nothing applied


def test_upstreams_one_packet_stream_carries_no_walk_digest(source: Path, tmp_path: Path) -> None:
    stats, _ = asyncio.run(_transfer(source, tmp_path / "plain", False, tmp_path / "a.sock"))
    assert stats.walk_digest == "" and not stats.unchanged
