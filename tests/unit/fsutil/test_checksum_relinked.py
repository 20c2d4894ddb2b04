"""The file-digest memo across hardlinks and transfers: a link moves a file's ctime, which is
part of the memo's key; `relinked` carries the digest over so that shared files are not hashed
again, while a file really rewritten is; digests `learn`t from the context transfer spare the
reads."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pybuildkit.worker.contenthash.checksum import ChecksumCache


def _linked(path: Path | str) -> list[tuple[str, int, int]]:
    """What COPY's copier hands over for a file it linked: (path, device, inode)."""
    st = os.lstat(path)
    return [(str(path), st.st_dev, st.st_ino)]


def _tree(root: Path) -> Path:
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"content")
    return root


def test_a_linked_file_is_not_hashed_again_after_relinked(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    cache = ChecksumCache()
    before = cache.checksum(root, "/")
    cache.fresh()
    os.link(root / "d" / "f", tmp_path / "elsewhere")
    cache.relinked(_linked(f"{root}/d/f"))
    assert cache.checksum(root, "/") == before
    assert cache.fresh() == {}  # nothing hashed; the carried entry waits for carried_over()


def test_relinked_under_covers_every_file_of_a_tree(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    cache = ChecksumCache()
    before = cache.checksum(root, "/")
    cache.fresh()
    os.link(root / "d" / "f", tmp_path / "elsewhere")
    cache.relinked_under(root)
    assert cache.checksum(root, "/") == before
    assert cache.fresh() == {}


def test_a_rewritten_file_keeps_no_digest(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    cache = ChecksumCache()
    before = cache.checksum(root, "/")
    (root / "d" / "f").write_bytes(b"another")
    cache.relinked(_linked(f"{root}/d/f"))
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
    root = _tree(tmp_path / "t")
    cache = ChecksumCache()
    before = cache.checksum(root, "/")
    cache.fresh()
    copy = tmp_path / "copy"
    copy.mkdir()
    os.link(root / "d" / "f", copy / "f")  # as COPY links a snapshot's file the walk never saw
    cache.relinked(_linked(f"{copy}/f"))
    assert cache.checksum(root, "/") == before
    assert cache.fresh() == {}


def test_carried_digests_are_handed_over_once_for_persisting(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    cache = ChecksumCache()
    cache.checksum(root, "/")
    os.link(root / "d" / "f", tmp_path / "elsewhere")
    cache.relinked(_linked(f"{root}/d/f"))
    st = os.lstat(root / "d" / "f")
    assert cache.carried_over() == {(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns):
                                    hashlib.sha256(b"content").hexdigest()}
    assert cache.carried_over() == {}


def test_links_never_looked_up_again_are_carried_at_close(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    cache = ChecksumCache()
    cache.checksum(root, "/")
    os.link(root / "d" / "f", tmp_path / "layer-f")
    cache.relinked(_linked(tmp_path / "layer-f"))
    now = os.lstat(root / "d" / "f")
    assert cache.carried_over() == {(now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns, now.st_ctime_ns):
                                    hashlib.sha256(b"content").hexdigest()}


def test_a_linked_inode_rewritten_before_its_lookup_is_hashed_again(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    cache = ChecksumCache()
    before = cache.checksum(root, "/")
    cache.relinked(_linked(root / "d" / "f"))
    (root / "d" / "f").write_bytes(b"another")  # the same size; a new mtime
    assert cache.checksum(root, "/") != before
