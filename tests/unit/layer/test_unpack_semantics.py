"""What applying a layer produces: entry types, metadata, and OCI whiteouts in both modes."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pybuildkit.worker.layer.diff import changes_from_overlay_upper
from pybuildkit.worker.layer.unpack import apply_layer, is_real_root

from .tarbuild import Item, directory, file, hardlink, layer, symlink

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs (mapped) root for chown/mknod")


def test_regular_file_content_mode_and_mtime(tmp_path: Path) -> None:
    apply_layer(layer(file("bin/tool", b"\x7fELF", mode=0o4755, mtime=1_234_567_890)), tmp_path)
    st = os.lstat(tmp_path / "bin" / "tool")
    assert (tmp_path / "bin" / "tool").read_bytes() == b"\x7fELF"
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert st.st_mtime == 1_234_567_890


@needs_root
def test_owner_applied_before_setuid_survives(tmp_path: Path) -> None:
    apply_layer(layer(file("su", b"x", mode=0o4750, uid=1234, gid=5678)), tmp_path)
    st = os.lstat(tmp_path / "su")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert stat.S_IMODE(st.st_mode) == 0o4750


def test_same_owner_false_keeps_the_unpacking_user(tmp_path: Path) -> None:
    apply_layer(layer(file("f", b"x", uid=1234, gid=5678)), tmp_path, same_owner=False)
    assert os.lstat(tmp_path / "f").st_uid == os.geteuid()


def test_directory_mtime_and_mode_are_set_after_its_contents(tmp_path: Path) -> None:
    apply_layer(layer(directory("d", mode=0o500, mtime=1_000_000_000), file("d/a", "a"), file("d/b", "b")), tmp_path)
    st = os.lstat(tmp_path / "d")
    assert st.st_mtime == 1_000_000_000
    assert stat.S_IMODE(st.st_mode) == 0o500
    assert sorted(os.listdir(tmp_path / "d")) == ["a", "b"]


def test_symlinks_and_hardlinks(tmp_path: Path) -> None:
    apply_layer(layer(file("a", "data"), hardlink("b", "a"), symlink("c", "/a", mtime=1_100_000_000)), tmp_path)
    assert os.path.samefile(tmp_path / "a", tmp_path / "b")
    assert os.readlink(tmp_path / "c") == "/a"
    assert os.lstat(tmp_path / "c").st_mtime == 1_100_000_000


def test_hardlink_to_a_file_of_a_lower_layer(tmp_path: Path) -> None:
    apply_layer(layer(file("lower", "l")), tmp_path)
    apply_layer(layer(hardlink("upper", "lower")), tmp_path)
    assert os.path.samefile(tmp_path / "lower", tmp_path / "upper")


def test_long_and_non_ascii_names_through_pax(tmp_path: Path) -> None:
    long_name = "/".join(["segment-" + "x" * 40] * 5) + "/fïlé"
    apply_layer(layer(file(long_name, "deep"), symlink("l", long_name)), tmp_path)
    assert (tmp_path / long_name).read_text() == "deep"
    assert (tmp_path / "l").read_text() == "deep"


def test_xattrs_from_pax_headers(tmp_path: Path) -> None:
    apply_layer(layer(file("f", "x", pax={"SCHILY.xattr.user.origin": "layer"})), tmp_path)
    try:
        value = os.getxattr(tmp_path / "f", "user.origin")
    except OSError as exc:
        pytest.skip(f"this filesystem has no user xattrs: {exc}")
    assert value == b"layer"


def test_fifo_and_devices(tmp_path: Path) -> None:
    stats = apply_layer(layer(Item("fifo", "p"), Item("char", "null", dev=(1, 3)), Item("block", "disk", dev=(8, 0))),
                        tmp_path)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "p").st_mode)
    if os.path.lexists(tmp_path / "null"):
        st = os.lstat(tmp_path / "null")
        assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    else:
        assert any("null" in note and "mknod" in note for note in stats.neutralised)


def test_entry_replaces_what_was_there(tmp_path: Path) -> None:
    apply_layer(layer(directory("x"), file("x/inner", "i"), file("y", "file"), symlink("z", "y")), tmp_path)
    apply_layer(layer(file("x", "now a file"), directory("y"), file("z", "now a file")), tmp_path)
    assert (tmp_path / "x").read_text() == "now a file"
    assert (tmp_path / "y").is_dir()
    assert not (tmp_path / "z").is_symlink()


def test_whiteouts_delete_and_opaque_dirs_hide_lower_contents(tmp_path: Path) -> None:
    apply_layer(layer(directory("keep"), file("keep/a", "a"), file("gone", "g"), directory("gone-dir"),
                      file("gone-dir/x", "x"), directory("op"), file("op/old", "o"), directory("op/olddir")), tmp_path)
    stats = apply_layer(layer(file(".wh.gone"), file(".wh.gone-dir"), directory("op"), file("op/-early", "e"),
                              file("op/.wh..wh..opq"), file("op/new", "n")), tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["keep", "op"]
    assert sorted(os.listdir(tmp_path / "op")) == ["-early", "new"]
    assert (tmp_path / "keep" / "a").read_text() == "a"
    assert stats.entries == 6


def test_whiteout_of_a_missing_file_is_a_no_op(tmp_path: Path) -> None:
    apply_layer(layer(file("dir/.wh.never-existed")), tmp_path)
    assert os.listdir(tmp_path) == []


@needs_root
def test_overlay_mode_writes_whiteout_devices_and_opaque_xattr(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    upper.mkdir()
    apply_layer(layer(directory("etc"), file("etc/.wh.gone"), directory("op"), file("op/.wh..wh..opq"),
                      file("op/new", "n")), upper, whiteout_mode="overlay")
    st = os.lstat(upper / "etc" / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    xattr = "trusted.overlay.opaque" if is_real_root() else "user.overlay.opaque"
    assert os.getxattr(upper / "op", xattr) == b"y"
    assert (upper / "op" / "new").read_text() == "n"
    assert not (upper / ".wh..wh..opq").exists() and not (upper / "op" / ".wh..wh..opq").exists()
    assert [(c.kind, c.path) for c in changes_from_overlay_upper(upper)] == [
        ("add", "etc"), ("delete", "etc/gone"), ("add", "op"), ("opaque", "op"), ("add", "op/new")]


@needs_root
def test_overlay_mode_whiteouts_hide_lower_files_in_a_real_mount(tmp_path: Path) -> None:
    import subprocess

    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    apply_layer(layer(file("gone", "g"), directory("op"), file("op/old", "o"), file("kept", "k")), lower)
    apply_layer(layer(file(".wh.gone"), directory("op"), file("op/.wh..wh..opq"), file("op/new", "n")), upper,
                whiteout_mode="overlay")
    options = f"lowerdir={lower},upperdir={upper},workdir={work}" + ("" if is_real_root() else ",userxattr")
    mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"overlayfs mount not permitted here: {mounted.stderr.decode().strip()}")
    try:
        assert sorted(os.listdir(merged)) == ["kept", "op"]
        assert os.listdir(merged / "op") == ["new"]
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_opaque_marker_after_entries_still_hides_lower_contents_below_them(tmp_path: Path) -> None:
    apply_layer(layer(directory("op"), directory("op/sub"), file("op/sub/lower", "l"), file("op/gone", "g")), tmp_path)
    apply_layer(layer(directory("op"), directory("op/sub"), file("op/sub/new", "n"), file("op/.wh..wh..opq")),
                tmp_path)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["op", "op/sub", "op/sub/new"]
