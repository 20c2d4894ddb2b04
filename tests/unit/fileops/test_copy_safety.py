"""No copy path, `..` or link (in the source or the destination) reaches outside its root."""
from __future__ import annotations

from pathlib import Path

import pytest

from pybuildkit.worker.ops.fileops import FileOpError, copy
from tests.unit.fileops.conftest import copy_action, listing, write_tree


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """Stands for the host outside both roots."""
    return write_tree(tmp_path / "host", {"secret": "host data", "dir/": None})


def test_dotdot_in_the_source_stays_in_the_source_root(src: Path, dest: Path, host: Path) -> None:
    write_tree(src, {"secret": "inside"})
    with pytest.raises(FileOpError, match="not found"):
        copy(src, dest, copy_action("../../host/secret", "/out"), None)
    copy(src, dest, copy_action("../../../secret", "/out"), None)
    assert (dest / "out").read_text() == "inside"


def test_dotdot_in_the_destination_stays_in_the_destination_root(src: Path, dest: Path, host: Path) -> None:
    write_tree(src, {"f": "payload"})
    copy(src, dest, copy_action("/f", "/../../host/dir/f", createDestPath=True), None)
    assert listing(host) == ["dir/", "secret"]
    assert (dest / "host/dir/f").read_text() == "payload"


def test_source_link_pointing_outside_resolves_inside(src: Path, dest: Path, host: Path) -> None:
    write_tree(src, {"abs": ("link", str(host / "secret")), "rel": ("link", "../../host/secret")})
    for name in ("abs", "rel"):
        with pytest.raises(FileOpError, match="not found"):
            copy(src, dest, copy_action(f"/{name}", "/out", followSymlink=True), None)
    assert listing(dest) == []


def test_source_parent_link_pointing_outside_resolves_inside(src: Path, dest: Path, host: Path) -> None:
    write_tree(src, {"up": ("link", "../../host")})
    with pytest.raises(FileOpError, match="not found"):
        copy(src, dest, copy_action("/up/secret", "/out"), None)


def test_links_inside_a_copied_tree_are_copied_as_links(src: Path, dest: Path, host: Path) -> None:
    write_tree(src, {"d/escape": ("link", str(host / "secret"))})
    copy(src, dest, copy_action("/d", "/e"), None)
    assert listing(dest) == ["e/", f"e/escape -> {host / 'secret'}"]


def test_destination_link_pointing_outside_resolves_inside(src: Path, dest: Path, host: Path) -> None:
    write_tree(src, {"f": "payload", "d/g": "payload"})
    write_tree(dest, {"abs": ("link", str(host / "dir")), "rel": ("link", "../host/dir")})
    copy(src, dest, copy_action("/f", "/abs/f", createDestPath=True), None)
    copy(src, dest, copy_action("/d", "/rel/", createDestPath=True, dirCopyContents=True), None)
    assert listing(host) == ["dir/", "secret"]
    assert (dest / host.relative_to("/") / "dir/f").read_text() == "payload"


def test_wildcards_cannot_escape(src: Path, dest: Path, host: Path) -> None:
    write_tree(src, {"in.txt": "x", "up": ("link", "../host")})
    with pytest.raises(FileOpError, match="not found"):
        copy(src, dest, copy_action("/up/*", "/out/", allowWildcard=True, followSymlink=True), None)
    copy(src, dest, copy_action("/../*.txt", "/out/", allowWildcard=True), None)
    assert listing(dest) == ["out/", "out/in.txt"]
