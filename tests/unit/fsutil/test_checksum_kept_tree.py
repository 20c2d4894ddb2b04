"""A kept tree (a local mirror): its directories' digests last from one checksum of the whole
tree to the next, and only the paths its writer reports changed are read again."""
from __future__ import annotations

import shutil
from pathlib import Path

from pybuildkit.worker.contenthash.checksum import ChecksumCache


def _tree(root: Path) -> Path:
    for d in ("a", "a/deep", "b", "c"):
        (root / d).mkdir(parents=True)
        for i in range(3):
            (root / d / f"f{i}").write_text(f"{d} {i}\n")
    return root


def _again(cache: ChecksumCache, root: Path, changed: list[str] | None) -> str:
    """The writer's round: digests taken, the tree changed, digests kept with what changed."""
    cache.keep_tree(root, cache.take_tree(root), changed)
    return cache.checksum(root, "/")


def _kept(tmp_path: Path) -> tuple[ChecksumCache, Path]:
    root = _tree(tmp_path / "mirror")
    cache = ChecksumCache()
    cache.keep_tree(root, None, None)
    cache.checksum(root, "/")
    return cache, root


def test_a_changed_file_gives_the_checksum_a_fresh_walk_gives(tmp_path: Path) -> None:
    cache, root = _kept(tmp_path)
    (root / "a" / "deep" / "f1").write_text("changed\n")
    assert _again(cache, root, ["a/deep/f1"]) == ChecksumCache().checksum(root, "/")


def test_a_removed_directory_and_a_new_one_give_the_fresh_checksum(tmp_path: Path) -> None:
    cache, root = _kept(tmp_path)
    shutil.rmtree(root / "a")
    (root / "new").mkdir()
    (root / "new" / "x").write_text("x\n")
    assert _again(cache, root, ["a", "a/deep", "a/deep/f0", "new", "new/x"]) == ChecksumCache().checksum(root, "/")


def test_directories_reported_unchanged_are_not_read_again(tmp_path: Path) -> None:
    cache, root = _kept(tmp_path)
    before = cache.checksum(root, "/")
    (root / "b" / "f0").write_text("behind the writer's back\n")
    assert _again(cache, root, []) == before


def test_an_unknown_change_starts_afresh(tmp_path: Path) -> None:
    cache, root = _kept(tmp_path)
    (root / "b" / "f0").write_text("changed\n")
    assert _again(cache, root, None) == ChecksumCache().checksum(root, "/")


def test_a_checksum_of_a_part_of_the_tree_does_not_use_the_kept_digests(tmp_path: Path) -> None:
    cache, root = _kept(tmp_path)
    (root / "b" / "f0").write_text("changed\n")
    assert cache.checksum(root, "/b") == ChecksumCache().checksum(root, "/b")
