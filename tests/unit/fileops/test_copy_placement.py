"""Where a copy lands: BuildKit's destination rules for files, directories and wildcards."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pybuildkit.worker.ops.fileops import FileOpError, copy
from tests.unit.fileops.conftest import copy_action, listing, write_tree


def test_file_to_a_new_name(src: Path, dest: Path) -> None:
    write_tree(src, {"a.txt": "A"})
    copy(src, dest, copy_action("/a.txt", "/b.txt"), None)
    assert listing(dest) == ["b.txt"] and (dest / "b.txt").read_text() == "A"


def test_file_over_an_existing_file(src: Path, dest: Path) -> None:
    write_tree(src, {"a.txt": "new"})
    write_tree(dest, {"b.txt": "old"})
    copy(src, dest, copy_action("a.txt", "b.txt"), None)
    assert (dest / "b.txt").read_text() == "new"


def test_file_into_an_existing_directory(src: Path, dest: Path) -> None:
    write_tree(src, {"a.txt": "A"})
    write_tree(dest, {"dir/": None})
    copy(src, dest, copy_action("/a.txt", "/dir"), None)
    assert listing(dest) == ["dir/", "dir/a.txt"]


def test_trailing_slash_makes_the_destination_a_directory(src: Path, dest: Path) -> None:
    write_tree(src, {"a.txt": "A"})
    copy(src, dest, copy_action("/a.txt", "/newdir/"), None)
    assert listing(dest) == ["newdir/", "newdir/a.txt"]


def test_missing_destination_parent_needs_create_dest_path(src: Path, dest: Path) -> None:
    write_tree(src, {"a.txt": "A"})
    with pytest.raises(FileOpError, match=r"^failed to stat /x/y/a.txt: lstat /x/y: no such file or directory$"):
        copy(src, dest, copy_action("/a.txt", "/x/y/a.txt"), None)
    copy(src, dest, copy_action("/a.txt", "/x/y/a.txt", createDestPath=True), None)
    assert listing(dest) == ["x/", "x/y/", "x/y/a.txt"]


def test_created_parents_are_0755(src: Path, dest: Path) -> None:
    write_tree(src, {"a.txt": "A"})
    copy(src, dest, copy_action("/a.txt", "/x/y/", createDestPath=True), None)
    assert os.stat(dest / "x").st_mode & 0o7777 == 0o755


def test_directory_to_a_new_path_becomes_that_path(src: Path, dest: Path) -> None:
    write_tree(src, {"d/f": "", "d/sub/g": ""})
    copy(src, dest, copy_action("/d", "/e"), None)
    assert listing(dest) == ["e/", "e/f", "e/sub/", "e/sub/g"]


def test_directory_onto_an_existing_directory_lands_inside(src: Path, dest: Path) -> None:
    write_tree(src, {"d/f": ""})
    write_tree(dest, {"e/": None})
    copy(src, dest, copy_action("/d", "/e"), None)
    assert listing(dest) == ["e/", "e/d/", "e/d/f"]


def test_dir_copy_contents_merges_into_the_destination(src: Path, dest: Path) -> None:
    write_tree(src, {"d/f": "new", "d/sub/g": ""})
    write_tree(dest, {"e/old": "", "e/sub/h": ""})
    copy(src, dest, copy_action("/d", "/e", dirCopyContents=True), None)
    assert listing(dest) == ["e/", "e/f", "e/old", "e/sub/", "e/sub/g", "e/sub/h"]


def test_dir_copy_contents_to_a_new_path_creates_it(src: Path, dest: Path) -> None:
    write_tree(src, {"d/f": ""})
    copy(src, dest, copy_action("/d", "/new", dirCopyContents=True), None)
    assert listing(dest) == ["new/", "new/f"]


def test_copying_the_whole_source_root(src: Path, dest: Path) -> None:
    write_tree(src, {"f": "", "d/g": ""})
    copy(src, dest, copy_action("/", "/app/", dirCopyContents=True, createDestPath=True), None)
    assert listing(dest) == ["app/", "app/d/", "app/d/g", "app/f"]


def test_dot_suffix_copies_contents_into_an_existing_directory(src: Path, dest: Path) -> None:
    write_tree(src, {"d/f": ""})
    write_tree(dest, {"e/": None})
    copy(src, dest, copy_action("/d/.", "/e"), None)
    assert listing(dest) == ["e/", "e/f"]


def test_wildcard_copies_every_match_into_a_directory(src: Path, dest: Path) -> None:
    write_tree(src, {"a.txt": "", "b.txt": "", "c.md": "", "sub/d.txt": ""})
    copy(src, dest, copy_action("/*.txt", "/out/", allowWildcard=True), None)
    assert listing(dest) == ["out/", "out/a.txt", "out/b.txt"]


def test_wildcard_matching_a_directory_copies_its_contents(src: Path, dest: Path) -> None:
    write_tree(src, {"dir1/f": "", "dir2/g": ""})
    copy(src, dest, copy_action("/dir*", "/out/", allowWildcard=True, dirCopyContents=True), None)
    assert listing(dest) == ["out/", "out/f", "out/g"]


def test_wildcard_matching_nothing_is_an_error(src: Path, dest: Path) -> None:
    with pytest.raises(FileOpError, match=r'^failed to calculate checksum of ref: "/nomatch\*": not found$'):
        copy(src, dest, copy_action("/nomatch*", "/", allowWildcard=True), None)


def test_wildcard_matching_nothing_is_allowed_when_asked(src: Path, dest: Path) -> None:
    copy(src, dest, copy_action("/nomatch*", "/out/", allowWildcard=True, allowEmptyWildcard=True), None)
    copy(src, dest, copy_action("/missing/*", "/out/", allowWildcard=True, allowEmptyWildcard=True), None)
    assert listing(dest) == []


def test_missing_source(src: Path, dest: Path) -> None:
    with pytest.raises(FileOpError, match=r'^failed to calculate checksum of ref: "/nothere": not found$'):
        copy(src, dest, copy_action("nothere", "/"), None)


def test_required_paths_must_exist_below_the_source(src: Path, dest: Path) -> None:
    write_tree(src, {"test/a/f": ""})
    with pytest.raises(FileOpError, match=r'"/test/nonexistent-file": not found'):
        copy(src, dest, copy_action("/", "/out/", required_paths=["test/nonexistent-file"]), None)
    copy(src, dest, copy_action("/", "/out/", required_paths=["test/a"], include_patterns=["test/a"]), None)
    assert listing(dest) == ["out/", "out/test/", "out/test/a/", "out/test/a/f"]


def test_followed_source_link_copies_the_target(src: Path, dest: Path) -> None:
    write_tree(src, {"real.txt": "content", "link": ("link", "real.txt"), "chain": ("link", "/link")})
    copy(src, dest, copy_action("/chain", "/out", followSymlink=True), None)
    assert not (dest / "out").is_symlink() and (dest / "out").read_text() == "content"


def test_unfollowed_source_link_is_copied_as_a_link(src: Path, dest: Path) -> None:
    write_tree(src, {"real.txt": "content", "link": ("link", "real.txt")})
    copy(src, dest, copy_action("/link", "/out"), None)
    assert os.readlink(dest / "out") == "real.txt"


def test_wildcard_matches_links_and_follows_them(src: Path, dest: Path) -> None:
    write_tree(src, {"sub/file": "f", "sub/l0": ("link", "file"), "sub/l1": ("link", "../other"), "other": "o"})
    copy(src, dest, copy_action("/sub/l*", "/all/", allowWildcard=True, followSymlink=True), None)
    assert listing(dest) == ["all/", "all/l0", "all/l1"]
    assert (dest / "all/l0").read_text() == "f" and (dest / "all/l1").read_text() == "o"


def test_source_parents_that_are_links_are_followed_inside_the_root(src: Path, dest: Path) -> None:
    write_tree(src, {"out/sub/foo": "data", "abs": ("link", "/out/sub"), "rel": ("link", "out/sub")})
    copy(src, dest, copy_action("/abs/foo", "/a"), None)
    copy(src, dest, copy_action("/rel/foo", "/b"), None)
    assert (dest / "a").read_text() == "data" and (dest / "b").read_text() == "data"


def test_destination_link_to_a_directory_is_followed_inside_the_root(src: Path, dest: Path) -> None:
    write_tree(src, {"f": "x"})
    write_tree(dest, {"real/": None, "link": ("link", "/real")})
    copy(src, dest, copy_action("/f", "/link"), None)
    assert listing(dest) == ["link -> /real", "real/", "real/f"]
