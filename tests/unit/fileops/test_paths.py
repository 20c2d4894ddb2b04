"""Action paths resolve inside the root as a chroot would; wildcards match like Go's Walk+Match."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pybuildkit.worker.ops.fileops.paths import clean_path, go_base, in_root, resolve_wildcards, split_wildcards, shown
from tests.unit.fileops.conftest import write_tree


@pytest.mark.parametrize(("raw", "cleaned"), [
    ("a/b", "/a/b"), ("/a/b/", "/a/b/"), ("a/b/.", "/a/b/."), ("../../x", "/x"), ("/a/../b", "/b"),
    ("", "/"), (".", "/"), ("/", "/"), ("//a//b", "/a/b"), ("a/./b/", "/a/b/"),
])
def test_clean_path_keeps_the_directory_marker(raw: str, cleaned: str) -> None:
    assert clean_path(raw) == cleaned


@pytest.mark.parametrize(("path", "base"), [("/a/b", "b"), ("/a/b/", "b"), ("/a/.", "."), ("/", "/"), ("x", "x")])
def test_go_base(path: str, base: str) -> None:
    assert go_base(path) == base


def test_dotdot_stops_at_the_root(tmp_path: Path) -> None:
    assert in_root(tmp_path, "../../etc/passwd") == tmp_path / "etc/passwd"


def test_absolute_symlink_resolves_inside_the_root(tmp_path: Path) -> None:
    write_tree(tmp_path, {"etc/": None, "link": ("link", "/etc")})
    assert in_root(tmp_path, "/link/passwd") == tmp_path / "etc/passwd"


def test_relative_symlink_cannot_climb_out(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a/": None, "a/up": ("link", "../../../../tmp")})
    assert in_root(tmp_path, "/a/up/x") == tmp_path / "tmp/x"


def test_final_link_is_kept_when_asked(tmp_path: Path) -> None:
    write_tree(tmp_path, {"target": "t", "link": ("link", "/target")})
    assert in_root(tmp_path, "/link", follow_last=False) == tmp_path / "link"
    assert in_root(tmp_path, "/link") == tmp_path / "target"


def test_shown_names_paths_as_the_build_sees_them(tmp_path: Path) -> None:
    assert shown(tmp_path, tmp_path / "a/b") == "/a/b"
    assert shown(tmp_path, tmp_path) == "/"


def test_split_wildcards_at_the_first_wildcard_element() -> None:
    assert split_wildcards("/a/b*/c/d?") == ("/a", "b*/c/d?")
    assert split_wildcards("/a/b") == ("/a/b", "")
    assert split_wildcards("/a/\\*b") == ("/a/\\*b", "")


def test_wildcards_match_in_lexical_order_including_dotfiles(tmp_path: Path) -> None:
    write_tree(tmp_path, {"d/b.txt": "", "d/a.txt": "", "d/.c.txt": "", "d/x.md": ""})
    assert resolve_wildcards(tmp_path, "/d/*.txt", follow_links=False) == ["/d/.c.txt", "/d/a.txt", "/d/b.txt"]


def test_wildcards_span_several_elements(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a/one/c": "", "a/two/c": "", "a/two/d": "", "a/three": ""})
    assert resolve_wildcards(tmp_path, "/a/*/c", follow_links=False) == ["/a/one/c", "/a/two/c"]


def test_a_matching_directory_is_not_searched(tmp_path: Path) -> None:
    write_tree(tmp_path, {"dir1/dir2/x": ""})
    assert resolve_wildcards(tmp_path, "/dir*", follow_links=False) == ["/dir1"]


def test_wildcards_do_not_enter_symlinked_directories(tmp_path: Path) -> None:
    write_tree(tmp_path, {"real/f": "", "d/": None, "d/link": ("link", "/real")})
    assert resolve_wildcards(tmp_path, "/d/*/f", follow_links=False) == []


def test_wildcard_without_prefix_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        resolve_wildcards(tmp_path, "/missing/*", follow_links=False)


def test_path_without_wildcard_is_returned_unchanged(tmp_path: Path) -> None:
    assert resolve_wildcards(tmp_path, "/whatever", follow_links=False) == ["/whatever"]
    assert not os.path.exists(tmp_path / "whatever")
