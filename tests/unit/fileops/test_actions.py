"""mkdir, mkfile, rm and symlink as BuildKit's file backend performs them."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.worker.ops.fileops import FileOpError, Owner, mkdir, mkfile, rm, symlink
from tests.unit.fileops.conftest import listing, mode_of, require_root, write_tree

T = 1_600_000_000_123_456_789


def test_mkdir_creates_a_directory_with_the_exact_mode(tmp_path: Path) -> None:
    mkdir(tmp_path, pb.FileActionMkDir(path="/d", mode=0o775, timestamp=-1), None)
    assert (tmp_path / "d").is_dir() and mode_of(tmp_path / "d") == 0o775


def test_mkdir_drops_setuid_bits_as_upstream(tmp_path: Path) -> None:
    mkdir(tmp_path, pb.FileActionMkDir(path="/d", mode=0o4755, timestamp=-1), None)
    assert mode_of(tmp_path / "d") == 0o755


def test_mkdir_without_parents_fails_when_the_parent_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileOpError, match=r"^mkdir /a/b: no such file or directory$"):
        mkdir(tmp_path, pb.FileActionMkDir(path="/a/b", mode=0o755, timestamp=-1), None)


def test_mkdir_with_parents_creates_each_missing_level(tmp_path: Path) -> None:
    mkdir(tmp_path, pb.FileActionMkDir(path="/a/b/c", mode=0o700, makeParents=True, timestamp=T), None)
    for rel in ("a", "a/b", "a/b/c"):
        assert mode_of(tmp_path / rel) == 0o700
        assert os.stat(tmp_path / rel).st_mtime_ns == T


def test_mkdir_of_an_existing_path_is_not_an_error(tmp_path: Path) -> None:
    write_tree(tmp_path, {"d/": None, "f": "x"})
    os.chmod(tmp_path / "d", 0o711)
    mkdir(tmp_path, pb.FileActionMkDir(path="/d", mode=0o755, timestamp=-1), None)
    mkdir(tmp_path, pb.FileActionMkDir(path="/f", mode=0o755, timestamp=-1), None)
    assert mode_of(tmp_path / "d") == 0o711 and (tmp_path / "f").is_file()


def test_mkdir_with_parents_through_a_file_is_not_a_directory(tmp_path: Path) -> None:
    write_tree(tmp_path, {"f": "x"})
    with pytest.raises(FileOpError, match=r"^mkdir /f: not a directory$"):
        mkdir(tmp_path, pb.FileActionMkDir(path="/f/sub", mode=0o755, makeParents=True, timestamp=-1), None)


def test_mkdir_unset_timestamp_keeps_the_natural_time(tmp_path: Path) -> None:
    mkdir(tmp_path, pb.FileActionMkDir(path="/d", mode=0o755, timestamp=-1), None)
    assert os.stat(tmp_path / "d").st_mtime_ns > T


def test_mkdir_sets_the_owner(tmp_path: Path) -> None:
    require_root()
    mkdir(tmp_path, pb.FileActionMkDir(path="/a/b", mode=0o755, makeParents=True, timestamp=-1), Owner(1000, 1001))
    assert (os.stat(tmp_path / "a").st_uid, os.stat(tmp_path / "a/b").st_gid) == (1000, 1001)


def test_mkdir_follows_links_inside_the_root(tmp_path: Path) -> None:
    write_tree(tmp_path, {"real/": None, "link": ("link", "/real")})
    mkdir(tmp_path, pb.FileActionMkDir(path="/link/new", mode=0o755, timestamp=-1), None)
    assert (tmp_path / "real/new").is_dir()


def test_mkfile_writes_data_mode_and_time(tmp_path: Path) -> None:
    mkfile(tmp_path, pb.FileActionMkFile(path="/f", mode=0o640, data=b"hello", timestamp=T), None)
    assert (tmp_path / "f").read_bytes() == b"hello"
    assert mode_of(tmp_path / "f") == 0o640 and os.stat(tmp_path / "f").st_mtime_ns == T


def test_mkfile_overwrites_an_existing_file(tmp_path: Path) -> None:
    write_tree(tmp_path, {"f": "old content"})
    mkfile(tmp_path, pb.FileActionMkFile(path="f", mode=0o600, data=b"new", timestamp=-1), None)
    assert (tmp_path / "f").read_bytes() == b"new" and mode_of(tmp_path / "f") == 0o600
    assert listing(tmp_path) == ["f"]


def test_mkfile_replaces_a_hardlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": "shared"})
    os.link(tmp_path / "a", tmp_path / "b")
    mkfile(tmp_path, pb.FileActionMkFile(path="/b", mode=0o644, data=b"mine", timestamp=-1), None)
    assert (tmp_path / "a").read_text() == "shared"


def test_mkfile_needs_the_parent(tmp_path: Path) -> None:
    with pytest.raises(FileOpError, match=r"^open /nodir/f: no such file or directory$"):
        mkfile(tmp_path, pb.FileActionMkFile(path="/nodir/f", mode=0o644, timestamp=-1), None)


def test_mkfile_onto_a_directory_fails(tmp_path: Path) -> None:
    write_tree(tmp_path, {"d/": None})
    with pytest.raises(FileOpError, match=r"^rename /d: is a directory$"):
        mkfile(tmp_path, pb.FileActionMkFile(path="/d", mode=0o644, timestamp=-1), None)
    assert listing(tmp_path) == ["d/"]
    with pytest.raises(FileOpError, match=r"^mkfile /: is a directory$"):
        mkfile(tmp_path, pb.FileActionMkFile(path="/", mode=0o644, timestamp=-1), None)


def test_mkfile_sets_the_owner(tmp_path: Path) -> None:
    require_root()
    mkfile(tmp_path, pb.FileActionMkFile(path="/f", mode=0o4755, timestamp=-1), Owner(7, 8))
    st = os.stat(tmp_path / "f")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (7, 8, 0o755)


def test_rm_removes_a_file_and_a_whole_tree(tmp_path: Path) -> None:
    write_tree(tmp_path, {"f": "", "d/sub/x": "", "keep": ""})
    rm(tmp_path, pb.FileActionRm(path="/f"))
    rm(tmp_path, pb.FileActionRm(path="/d"))
    assert listing(tmp_path) == ["keep"]


def test_rm_of_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileOpError, match=r"^stat /nothere: no such file or directory$"):
        rm(tmp_path, pb.FileActionRm(path="/nothere"))
    rm(tmp_path, pb.FileActionRm(path="/nothere", allowNotFound=True))


def test_rm_removes_a_link_not_its_target(tmp_path: Path) -> None:
    write_tree(tmp_path, {"target/f": "", "link": ("link", "/target"), "dangling": ("link", "/none")})
    rm(tmp_path, pb.FileActionRm(path="/link"))
    rm(tmp_path, pb.FileActionRm(path="/dangling"))
    assert listing(tmp_path) == ["target/", "target/f"]


def test_rm_with_wildcards(tmp_path: Path) -> None:
    write_tree(tmp_path, {"d/a.log": "", "d/b.log": "", "d/c.txt": ""})
    rm(tmp_path, pb.FileActionRm(path="/d/*.log", allowWildcard=True))
    assert listing(tmp_path) == ["d/", "d/c.txt"]


def test_rm_wildcard_matching_nothing_removes_nothing(tmp_path: Path) -> None:
    write_tree(tmp_path, {"d/c.txt": ""})
    rm(tmp_path, pb.FileActionRm(path="/d/*.log", allowWildcard=True))
    assert listing(tmp_path) == ["d/", "d/c.txt"]


def test_rm_wildcard_under_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileOpError, match=r"^lstat /none: no such file or directory$"):
        rm(tmp_path, pb.FileActionRm(path="/none/*", allowWildcard=True))
    rm(tmp_path, pb.FileActionRm(path="/none/*", allowWildcard=True, allowNotFound=True))


def test_rm_cannot_leave_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_tree(tmp_path, {"outside": "precious", "root/escape": ("link", "/..")})
    rm(root, pb.FileActionRm(path="/../outside", allowNotFound=True))
    rm(root, pb.FileActionRm(path="/escape/outside", allowNotFound=True))
    assert (tmp_path / "outside").read_text() == "precious"


def test_rm_refuses_the_root(tmp_path: Path) -> None:
    with pytest.raises(FileOpError, match="refusing to remove the root"):
        rm(tmp_path, pb.FileActionRm(path="/"))


def test_symlink_creates_the_link_with_owner_and_time(tmp_path: Path) -> None:
    symlink(tmp_path, pb.FileActionSymlink(oldpath="/target", newpath="/link", timestamp=T), None)
    assert os.readlink(tmp_path / "link") == "/target"
    assert os.lstat(tmp_path / "link").st_mtime_ns == T


def test_symlink_onto_an_existing_path_fails(tmp_path: Path) -> None:
    write_tree(tmp_path, {"f": ""})
    with pytest.raises(FileOpError, match=r"^symlink x /f: file exists$"):
        symlink(tmp_path, pb.FileActionSymlink(oldpath="x", newpath="/f", timestamp=-1), None)


def test_symlink_owner(tmp_path: Path) -> None:
    require_root()
    symlink(tmp_path, pb.FileActionSymlink(oldpath="x", newpath="/l", timestamp=-1), Owner(5, 6))
    st = os.lstat(tmp_path / "l")
    assert (st.st_uid, st.st_gid) == (5, 6)
