"""The file-digest memo across hardlinks and transfers: a link moves a file's ctime, which is
part of the memo's key; `relinked` carries the digest over so that shared files are not hashed
again, while a file really rewritten is; digests `learn`t from the context transfer spare the
reads."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pybuildkit.worker.contenthash.checksum import ChecksumCache


def _key(path: Path | str) -> tuple[int, int, int, int, int]:
    st = os.lstat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _link(src: Path, dst: Path) -> list[tuple[int, int, int, int, int]]:
    """Link as COPY's copier does, and return what it hands over: the source's key before the link."""
    before = _key(src)
    os.link(src, dst)
    return [before]


def _tree(root: Path) -> Path:
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"content")
    return root


def _checksummed(tmp_path: Path) -> tuple[Path, ChecksumCache, str]:
    """A tree, a cache that has checksummed it, and that checksum."""
    root = _tree(tmp_path / "t")
    cache = ChecksumCache()
    return root, cache, cache.checksum(root, "/")


def test_a_linked_file_is_not_hashed_again_after_relinked(tmp_path: Path) -> None:
    root, cache, before = _checksummed(tmp_path)
    cache.fresh()
    cache.relinked(_link(root / "d" / "f", tmp_path / "elsewhere"))
    assert cache.checksum(root, "/") == before
    assert cache.fresh() == {}  # nothing hashed; the carried entry waits for carried_over()


def test_relinked_under_covers_every_file_of_a_tree(tmp_path: Path) -> None:
    root, cache, before = _checksummed(tmp_path)
    cache.fresh()
    os.link(root / "d" / "f", tmp_path / "elsewhere")
    cache.relinked_under(root)
    assert cache.checksum(root, "/") == before
    assert cache.fresh() == {}


def test_a_rewritten_file_keeps_no_digest(tmp_path: Path) -> None:
    root, cache, before = _checksummed(tmp_path)
    (root / "d" / "f").write_bytes(b"another")
    cache.relinked(_link(root / "d" / "f", tmp_path / "elsewhere"))
    assert cache.checksum(root, "/") != before


def test_learned_digests_spare_the_reads(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    expected = ChecksumCache().checksum(root, "/")
    cache = ChecksumCache()
    cache.learn(root, {"d/f": hashlib.sha256(b"content").hexdigest()})
    assert len(cache.fresh()) == 1  # learned, to persist
    assert cache.checksum(root, "/") == expected
    assert cache.fresh() == {}  # nothing was hashed


def test_a_link_made_from_another_path_carries_the_digest_too(tmp_path: Path) -> None:
    root, cache, before = _checksummed(tmp_path)
    cache.fresh()
    copy = tmp_path / "copy"
    copy.mkdir()
    cache.relinked(_link(root / "d" / "f", copy / "f"))  # as COPY links a snapshot's file the walk never saw
    assert cache.checksum(root, "/") == before
    assert cache.fresh() == {}


def test_carried_digests_are_handed_over_once_for_persisting(tmp_path: Path) -> None:
    root, cache, _ = _checksummed(tmp_path)
    cache.relinked(_link(root / "d" / "f", tmp_path / "elsewhere"))
    cache.checksum(root, "/")
    assert cache.carried_over() == {_key(root / "d" / "f"): hashlib.sha256(b"content").hexdigest()}
    assert cache.carried_over() == {}


def test_links_never_looked_up_again_carry_in_the_next_process(tmp_path: Path) -> None:
    root, cache, before = _checksummed(tmp_path)
    cache.relinked(_link(root / "d" / "f", tmp_path / "layer-f"))
    memo = {**cache.fresh(), **cache.carried_over()}
    assert cache.carried_over() == {}  # nothing looked at: the claim is pending
    again = ChecksumCache(known=memo, claims=cache.pending_claims())
    assert again.checksum(root, "/") == before
    assert again.fresh() == {}


def test_a_linked_inode_rewritten_before_its_lookup_is_hashed_again(tmp_path: Path) -> None:
    root, cache, before = _checksummed(tmp_path)
    cache.relinked(_link(root / "d" / "f", tmp_path / "elsewhere"))
    (root / "d" / "f").write_bytes(b"another")  # the same size; a new mtime
    assert cache.checksum(root, "/") != before


def test_a_claim_does_not_carry_to_an_inode_rewritten_with_its_old_size_and_time(tmp_path: Path) -> None:
    root, cache, before = _checksummed(tmp_path)
    cache.relinked(_link(root / "d" / "f", tmp_path / "elsewhere"))
    old = os.lstat(root / "d" / "f")
    (root / "d" / "f").write_bytes(b"CONTENT")
    os.utime(root / "d" / "f", ns=(old.st_atime_ns, old.st_mtime_ns))  # only the ctime tells
    assert cache.checksum(root, "/") != before


def test_a_file_linked_twice_before_its_lookup_still_carries(tmp_path: Path) -> None:
    root, cache, before = _checksummed(tmp_path)
    cache.fresh()
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    os.link(root / "d" / "f", snapshot / "f")
    cache.relinked_under(root)  # the mirror into its snapshot
    cache.relinked(_link(snapshot / "f", tmp_path / "layer-f"))  # COPY from the snapshot
    assert cache.checksum(root, "/") == before
    assert cache.fresh() == {}


def test_the_memo_is_read_only_when_a_file_is_looked_up(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    reads: list[int] = []

    def load() -> tuple[dict, list]:
        reads.append(1)
        return {}, []

    cache = ChecksumCache(load=load)
    cache.keep_tree(root, cache.take_tree(root), None)
    assert not cache.loaded and reads == []
    cache.checksum(root, "/")
    cache.checksum(root, "/d")
    assert cache.loaded and reads == [1]
