"""Include and exclude patterns of a copy, relative to the copied directory."""
from __future__ import annotations

from pathlib import Path

from pybuildkit.worker.ops.fileops import copy
from tests.unit.fileops.conftest import copy_action, listing, write_tree

TREE = {"a/b/c": "", "a/b/d": "", "a/x/c": "", "keep.txt": "", "skip.log": "", "node_modules/m/index.js": "",
        "node_modules/keep/k": "", "empty/": None}


def _copy(src: Path, dest: Path, include: list[str] | None = None, exclude: list[str] | None = None) -> list[str]:
    write_tree(src, TREE)
    copy(src, dest, copy_action("/", "/out/", dirCopyContents=True, include_patterns=include or [],
                                exclude_patterns=exclude or []), None)
    return listing(dest / "out")


def test_exclude_a_pattern(src: Path, dest: Path) -> None:
    assert _copy(src, dest, exclude=["*.log", "node_modules"]) == [
        "a/", "a/b/", "a/b/c", "a/b/d", "a/x/", "a/x/c", "empty/", "keep.txt"]


def test_exclusion_exception_brings_back_an_entry_with_its_parents(src: Path, dest: Path) -> None:
    assert _copy(src, dest, exclude=["node_modules", "!node_modules/keep", "a", "*.log"]) == [
        "empty/", "keep.txt", "node_modules/", "node_modules/keep/", "node_modules/keep/k"]


def test_include_creates_only_the_parents_leading_to_matches(src: Path, dest: Path) -> None:
    assert _copy(src, dest, include=["a/*/c"]) == ["a/", "a/b/", "a/b/c", "a/x/", "a/x/c"]


def test_an_included_directory_brings_everything_below(src: Path, dest: Path) -> None:
    assert _copy(src, dest, include=["a/b"]) == ["a/", "a/b/", "a/b/c", "a/b/d"]


def test_exclude_wins_over_include(src: Path, dest: Path) -> None:
    assert _copy(src, dest, include=["a", "*.txt"], exclude=["a/b/d"]) == [
        "a/", "a/b/", "a/b/c", "a/x/", "a/x/c", "keep.txt"]


def test_double_star_matches_at_any_depth(src: Path, dest: Path) -> None:
    assert _copy(src, dest, include=["**/c"]) == ["a/", "a/b/", "a/b/c", "a/x/", "a/x/c"]


def test_include_matching_nothing_copies_nothing_but_the_destination(src: Path, dest: Path) -> None:
    assert _copy(src, dest, include=["nothing-here"]) == []
    assert (dest / "out").is_dir()


def test_patterns_do_not_filter_a_single_file_source(src: Path, dest: Path) -> None:
    write_tree(src, {"f.log": ""})
    copy(src, dest, copy_action("/f.log", "/g", exclude_patterns=["*.log"]), None)
    assert listing(dest) == ["g"]
