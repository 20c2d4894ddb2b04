"""Copies from an immutable tree (`link=True`): a file whose owner, mode and times the copy
keeps becomes a hardlink of the source instead of a copy; any other file is copied."""
from __future__ import annotations

import os
from pathlib import Path

from pybuildkit.worker.ops.fileops import Owner, copy
from tests.unit.fileops.conftest import copy_action, mode_of, write_tree


def test_a_file_the_copy_keeps_as_it_is_is_a_hardlink_of_the_source(src: Path, dest: Path) -> None:
    write_tree(src, {"d/a.txt": "a", "d/sub/b.txt": "b"})
    before = {name: os.lstat(src / name) for name in ("d/a.txt", "d/sub/b.txt")}
    linked: list[tuple[int, int, int, int, int]] = []
    copy(src, dest, copy_action("/d", "/e"), None, link=True, linked=linked.extend)
    assert os.stat(dest / "e/a.txt").st_ino == os.stat(src / "d/a.txt").st_ino
    assert os.stat(dest / "e/sub/b.txt").st_ino == os.stat(src / "d/sub/b.txt").st_ino
    # what the digest memo is told: each source's key just before it was linked
    assert sorted(linked) == sorted((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                                    for st in before.values())


def test_a_copy_that_changes_the_mode_copies_and_leaves_the_source_alone(src: Path, dest: Path) -> None:
    write_tree(src, {"f": "x"})
    os.chmod(src / "f", 0o644)
    copy(src, dest, copy_action("/f", "/g", mode=0o600), None, link=True)
    assert os.stat(dest / "g").st_ino != os.stat(src / "f").st_ino
    assert (mode_of(dest / "g"), mode_of(src / "f")) == (0o600, 0o644)


def test_a_copy_to_another_owner_copies(src: Path, dest: Path) -> None:
    write_tree(src, {"f": "x"})
    st = os.stat(src / "f")
    copy(src, dest, copy_action("/f", "/g"), Owner(st.st_uid + 1, st.st_gid + 1), link=True)
    assert os.stat(dest / "g").st_ino != st.st_ino
    assert os.stat(src / "f").st_uid == st.st_uid


def test_without_link_a_copy_never_shares_an_inode(src: Path, dest: Path) -> None:
    write_tree(src, {"f": "x"})
    copy(src, dest, copy_action("/f", "/g"), None)
    assert os.stat(dest / "g").st_ino != os.stat(src / "f").st_ino
