"""Diffs of trees and overlay upper dirs, and the layer tars written from them."""
from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from pybuildkit.worker.layer.diff import Change, changes_between, changes_from_overlay_upper, write_layer_tar
from pybuildkit.worker.layer.unpack import apply_layer

EPOCH = 1_700_000_000


def _touch(path: Path, data: str, mtime: int = 1_650_000_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    os.utime(path, (mtime, mtime))


def _snapshot(root: Path) -> dict[str, tuple]:
    """Everything a layer must carry for each path: type, mode, owner, content or target, mtime."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                payload: object = Path(full).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                payload = os.readlink(full)
            else:
                payload = None
            mtime = None if stat.S_ISDIR(st.st_mode) else int(st.st_mtime)
            out[os.path.relpath(full, root)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                                                st.st_gid, payload, mtime)
    return out


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for root in (lower, upper):
        _touch(root / "etc" / "same", "same")
        _touch(root / "etc" / "nested" / "deep" / "same", "same")
        _touch(root / "usr" / "bin" / "tool", "v1")
    _touch(lower / "removed", "bye")
    _touch(lower / "gone-dir" / "inner", "bye")
    _touch(lower / "becomes-dir", "file")
    os.symlink("etc/same", lower / "retarget")
    _touch(upper / "usr" / "bin" / "tool", "v2")
    os.chmod(upper / "usr" / "bin" / "tool", 0o4755)
    _touch(upper / "becomes-dir" / "child", "c")
    os.symlink("etc/nested", upper / "retarget")
    _touch(upper / "added" / "file", "new")
    os.link(upper / "added" / "file", upper / "added" / "hardlink")
    os.mkfifo(upper / "pipe")
    return lower, upper


def test_changes_between_lists_what_differs_with_changed_parents(trees: tuple[Path, Path]) -> None:
    lower, upper = trees
    assert changes_between(lower, upper) == [
        Change("add", "added"), Change("add", "added/file"), Change("add", "added/hardlink"),
        Change("modify", "becomes-dir"), Change("add", "becomes-dir/child"), Change("delete", "gone-dir"),
        Change("add", "pipe"), Change("delete", "removed"), Change("modify", "retarget"),
        Change("modify", "usr"), Change("modify", "usr/bin"), Change("modify", "usr/bin/tool"),
    ]


def test_unchanged_tree_has_no_changes(trees: tuple[Path, Path]) -> None:
    lower, _ = trees
    assert changes_between(lower, lower) == []


def test_whole_second_mtimes_fall_back_to_content(tmp_path: Path) -> None:
    lower, upper = tmp_path / "l", tmp_path / "u"
    _touch(lower / "same-bytes", "aaaa")
    _touch(upper / "same-bytes", "aaaa")
    _touch(lower / "other-bytes", "aaaa")
    _touch(upper / "other-bytes", "bbbb")
    assert changes_between(lower, upper) == [Change("modify", "other-bytes")]


def test_round_trip_through_a_layer_rebuilds_upper(trees: tuple[Path, Path], tmp_path: Path) -> None:
    lower, upper = trees
    tar_path = tmp_path / "layer.tar"
    with open(tar_path, "wb") as out:
        write_layer_tar(changes_between(lower, upper), upper, out)
    result = tmp_path / "result"
    shutil.copytree(lower, result, symlinks=True)
    with open(tar_path, "rb") as stream:
        apply_layer(stream, result)
    assert _snapshot(result) == _snapshot(upper)
    assert os.path.samefile(result / "added" / "file", result / "added" / "hardlink")


def test_round_trip_through_an_overlay_upper_dir(trees: tuple[Path, Path], tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("overlay whiteouts are char devices: mknod needs (mapped) root")
    lower, upper = trees
    first = io.BytesIO()
    write_layer_tar(changes_between(lower, upper), upper, first)
    first.seek(0)
    overlay_upper = tmp_path / "overlay-upper"
    overlay_upper.mkdir()
    apply_layer(first, overlay_upper, whiteout_mode="overlay")
    second = io.BytesIO()
    write_layer_tar(changes_from_overlay_upper(overlay_upper), overlay_upper, second)
    second.seek(0)
    result = tmp_path / "result"
    shutil.copytree(lower, result, symlinks=True)
    apply_layer(second, result)
    assert _snapshot(result) == _snapshot(upper)


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def test_tar_is_sorted_with_whiteouts_opaque_markers_and_parents(tmp_path: Path) -> None:
    upper = tmp_path / "u"
    _touch(upper / "a" / "b" / "c", "c")
    (upper / "op").mkdir()
    _touch(upper / "op" / "-dash", "d")
    _touch(upper / "a.b", "x")
    changes = [Change("add", "a/b/c"), Change("delete", "a/gone"), Change("add", "a.b"), Change("add", "op/-dash")]
    out = io.BytesIO()
    write_layer_tar(changes, upper, out, opaque_dirs=["op"])
    assert _names(out.getvalue()) == ["a", "a/b", "a/b/c", "a/.wh.gone", "a.b", "op", "op/.wh..wh..opq", "op/-dash"]


def test_tar_headers_carry_numeric_owners_and_hardlinks(trees: tuple[Path, Path]) -> None:
    _, upper = trees
    out = io.BytesIO()
    write_layer_tar(changes_between(None, upper), upper, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert all(m.uname == "" and m.gname == "" for m in members.values())
    assert members["added/hardlink"].islnk() and members["added/hardlink"].linkname == "added/file"
    assert members["pipe"].isfifo()
    assert members["usr/bin/tool"].mode == 0o4755
    assert members["retarget"].issym() and members["retarget"].linkname == "etc/nested"


def _retouch(root: Path, when: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)


def test_source_date_epoch_makes_rebuilt_trees_give_equal_bytes(trees: tuple[Path, Path], tmp_path: Path) -> None:
    _, upper = trees
    twin = tmp_path / "twin"
    subprocess.run(["cp", "-a", str(upper), str(twin)], check=True)
    _retouch(upper, EPOCH + 100)  # both "built" after the epoch, at different times
    _retouch(twin, EPOCH + 99_999)
    outputs = []
    for root in (upper, twin, upper):
        out = io.BytesIO()
        write_layer_tar(changes_between(None, root), root, out, source_date_epoch=EPOCH)
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1] == outputs[2]
    with tarfile.open(fileobj=io.BytesIO(outputs[0])) as tar:
        assert {m.mtime for m in tar.getmembers()} == {EPOCH}


def test_source_date_epoch_keeps_older_mtimes(tmp_path: Path) -> None:
    _touch(tmp_path / "old", "o", mtime=EPOCH - 5)
    out = io.BytesIO()
    write_layer_tar([Change("add", "old")], tmp_path, out, source_date_epoch=EPOCH)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.getmember("old").mtime == EPOCH - 5


def test_whiteouts_get_the_epoch_as_mtime(tmp_path: Path) -> None:
    out = io.BytesIO()
    (tmp_path / "d").mkdir()
    write_layer_tar([Change("delete", "d/x")], tmp_path, out, source_date_epoch=EPOCH)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.getmember("d/.wh.x").mtime == EPOCH and tar.getmember("d/.wh.x").size == 0


def test_file_output_and_memory_output_are_identical(trees: tuple[Path, Path], tmp_path: Path) -> None:
    _, upper = trees
    changes = changes_between(None, upper)
    memory = io.BytesIO()
    write_layer_tar(changes, upper, memory)
    with open(tmp_path / "out.tar", "wb") as handle:
        handle.write(b"")
        write_layer_tar(changes, upper, handle)
    assert (tmp_path / "out.tar").read_bytes() == memory.getvalue()


def test_gnu_tar_lists_the_layer(trees: tuple[Path, Path], tmp_path: Path) -> None:
    _, upper = trees
    with open(tmp_path / "l.tar", "wb") as handle:
        write_layer_tar(changes_between(None, upper), upper, handle)
    listing = subprocess.run(["tar", "-tvf", str(tmp_path / "l.tar")], check=True, capture_output=True, text=True)
    assert "added/hardlink link to added/file" in listing.stdout
    assert "-rwsr-xr-x 0/0" in listing.stdout


CAP_NET_RAW = b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\x00" * 12


def test_file_capabilities_are_diffed_and_carried(tmp_path: Path) -> None:
    lower, upper = tmp_path / "l", tmp_path / "u"
    _touch(lower / "ping", "elf")
    _touch(upper / "ping", "elf")
    try:
        os.setxattr(upper / "ping", "security.capability", CAP_NET_RAW)
    except OSError as exc:
        pytest.skip(f"cannot set file capabilities here: {exc}")
    os.utime(upper / "ping", (1_650_000_000, 1_650_000_000))
    changes = changes_between(lower, upper)
    assert changes == [Change("modify", "ping")]
    out = io.BytesIO()
    write_layer_tar(changes, upper, out)
    out.seek(0)
    apply_layer(out, lower)
    assert os.getxattr(lower / "ping", "security.capability") == CAP_NET_RAW
