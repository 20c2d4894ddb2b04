"""What a copied entry looks like: modes, owners, times, hardlinks, xattrs, special files."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.worker.ops.fileops import FileOpError, Owner, copy, resolve_owner
from tests.unit.fileops.conftest import copy_action, listing, mode_of, require_root, write_tree

T = 1_500_000_000_987_654_321


def test_unset_mode_keeps_each_source_mode(src: Path, dest: Path) -> None:
    write_tree(src, {"d/run.sh": "", "d/secret": ""})
    os.chmod(src / "d/run.sh", 0o755)
    os.chmod(src / "d/secret", 0o600)
    os.chmod(src / "d", 0o750)
    copy(src, dest, copy_action("/d", "/e"), None)
    assert (mode_of(dest / "e"), mode_of(dest / "e/run.sh"), mode_of(dest / "e/secret")) == (0o750, 0o755, 0o600)


def test_octal_mode_applies_to_every_entry(src: Path, dest: Path) -> None:
    write_tree(src, {"d/f": "", "d/sub/g": ""})
    copy(src, dest, copy_action("/d", "/e", mode=0o640), None)
    assert {mode_of(dest / rel) for rel in ("e", "e/f", "e/sub", "e/sub/g")} == {0o640}


def test_octal_mode_zero_is_a_mode(src: Path, dest: Path) -> None:
    write_tree(src, {"f": ""})
    copy(src, dest, copy_action("/f", "/g", mode=0), None)
    assert mode_of(dest / "g") == 0


def test_octal_mode_keeps_special_bits(src: Path, dest: Path) -> None:
    write_tree(src, {"f": ""})
    copy(src, dest, copy_action("/f", "/g", mode=0o4755), None)
    assert mode_of(dest / "g") == 0o4755


def test_octal_mode_also_for_created_parents(src: Path, dest: Path) -> None:
    write_tree(src, {"foo": ""})
    copy(src, dest, copy_action("/foo", "/parent/foo", mode=0o777, createDestPath=True), None)
    copy(src, dest, copy_action("/foo", "/parent/sub/foo", mode=0o770, createDestPath=True), None)
    assert (mode_of(dest / "parent"), mode_of(dest / "parent/sub")) == (0o777, 0o770)


def test_symbolic_mode_changes_each_entry_from_its_own_mode(src: Path, dest: Path) -> None:
    write_tree(src, {"d/exe": "", "d/data": ""})
    os.chmod(src / "d/exe", 0o744)
    os.chmod(src / "d/data", 0o644)
    os.chmod(src / "d", 0o700)
    copy(src, dest, copy_action("/d", "/e", modeStr="go+rX"), None)
    assert (mode_of(dest / "e"), mode_of(dest / "e/exe"), mode_of(dest / "e/data")) == (0o755, 0o755, 0o644)


def test_symbolic_mode_wins_over_octal(src: Path, dest: Path) -> None:
    write_tree(src, {"f": ""})
    os.chmod(src / "f", 0o600)
    copy(src, dest, copy_action("/f", "/g", mode=0o777, modeStr="u+x"), None)
    assert mode_of(dest / "g") == 0o700


def test_timestamp_sets_every_entry(src: Path, dest: Path) -> None:
    write_tree(src, {"d/f": "", "d/l": ("link", "f")})
    copy(src, dest, copy_action("/d", "/e", timestamp=T), None)
    assert {os.lstat(dest / rel).st_mtime_ns for rel in ("e", "e/f", "e/l")} == {T}


def test_unset_timestamp_keeps_the_source_times(src: Path, dest: Path) -> None:
    write_tree(src, {"d/f": ""})
    os.utime(src / "d/f", ns=(T, T))
    os.utime(src / "d", ns=(T - 5, T - 5))
    copy(src, dest, copy_action("/d", "/e"), None)
    assert (os.stat(dest / "e").st_mtime_ns, os.stat(dest / "e/f").st_mtime_ns) == (T - 5, T)


def test_existing_top_directory_keeps_its_owner_and_mode(src: Path, dest: Path) -> None:
    write_tree(src, {"d/f": "", "d/sub/g": ""})
    write_tree(dest, {"e/sub/": None})
    os.chmod(src / "d", 0o700)
    os.chmod(src / "d/sub", 0o700)
    os.chmod(dest / "e", 0o775)
    os.chmod(dest / "e/sub", 0o777)
    copy(src, dest, copy_action("/d", "/e", dirCopyContents=True), None)
    assert mode_of(dest / "e") == 0o775
    assert mode_of(dest / "e/sub") == 0o700  # nested directories take the source's metadata


def test_hardlinks_inside_the_copy_stay_hardlinks(src: Path, dest: Path) -> None:
    write_tree(src, {"d/a": "shared", "d/sub/": None})
    os.link(src / "d/a", src / "d/sub/b")
    copy(src, dest, copy_action("/d", "/e"), None)
    assert os.stat(dest / "e/a").st_ino == os.stat(dest / "e/sub/b").st_ino
    assert os.stat(dest / "e/a").st_ino != os.stat(src / "d/a").st_ino


def test_xattrs_are_copied(src: Path, dest: Path) -> None:
    write_tree(src, {"f": ""})
    try:
        os.setxattr(src / "f", "user.pbk", b"value")
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    copy(src, dest, copy_action("/f", "/g"), None)
    assert os.getxattr(dest / "g", "user.pbk") == b"value"


def test_fifo_is_recreated(src: Path, dest: Path) -> None:
    os.mkfifo(src / "pipe", 0o640)
    copy(src, dest, copy_action("/pipe", "/p"), None)
    assert stat.S_ISFIFO(os.lstat(dest / "p").st_mode) and mode_of(dest / "p") == 0o640


def test_device_nodes_are_recreated(src: Path, dest: Path) -> None:
    require_root()
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    copy(src, dest, copy_action("/null", "/n"), None)
    assert os.lstat(dest / "n").st_rdev == os.makedev(1, 3)


def test_source_owners_are_kept_without_chown(src: Path, dest: Path) -> None:
    require_root()
    write_tree(src, {"d/f": ""})
    os.lchown(src / "d/f", 1234, 5678)
    copy(src, dest, copy_action("/d", "/e"), None)
    assert (os.stat(dest / "e/f").st_uid, os.stat(dest / "e/f").st_gid) == (1234, 5678)


def test_chown_applies_to_every_copied_entry_and_created_parents(src: Path, dest: Path) -> None:
    require_root()
    write_tree(src, {"d/f": "", "d/l": ("link", "f")})
    copy(src, dest, copy_action("/d", "/p/e", createDestPath=True), Owner(1000, 1001))
    for rel in ("p", "p/e", "p/e/f", "p/e/l"):
        st = os.lstat(dest / rel)
        assert (st.st_uid, st.st_gid) == (1000, 1001), rel


def test_chown_keeps_existing_directories_owned_as_they_were(src: Path, dest: Path) -> None:
    require_root()
    write_tree(src, {"f": ""})
    write_tree(dest, {"existing/": None})
    copy(src, dest, copy_action("/f", "/existing/"), Owner(1000, 1000))
    assert os.stat(dest / "existing").st_uid == 0 and os.stat(dest / "existing/f").st_uid == 1000


def _passwd_root(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "rootfs", {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        "etc/group": "root:x:0:\ndaemon:x:1:\nnobody:x:65534:\napp:x:1000:\n",
    })


def _named(user: str | None, group: str | int | None, *, input_index: int = 0) -> pb.ChownOpt:
    opt = pb.ChownOpt()
    if user is not None:
        opt.user.byName.name = user
        opt.user.byName.input = input_index
    if isinstance(group, str):
        opt.group.byName.name = group
        opt.group.byName.input = input_index
    elif isinstance(group, int):
        opt.group.byID = group
    return opt


def test_chown_by_name_takes_the_primary_group(tmp_path: Path) -> None:
    assert resolve_owner(_named("daemon", None), _passwd_root(tmp_path)) == Owner(1, 1)


def test_chown_by_name_with_a_group_name(tmp_path: Path) -> None:
    assert resolve_owner(_named("app", "nobody"), _passwd_root(tmp_path)) == Owner(1000, 65534)


def test_chown_by_id_uses_the_id_as_group_too() -> None:
    opt = pb.ChownOpt()
    opt.user.byID = 1000
    assert resolve_owner(opt, None) == Owner(1000, 1000)
    opt.group.byID = 7
    assert resolve_owner(opt, None) == Owner(1000, 7)


def test_chown_by_unknown_name_is_root_as_upstream(tmp_path: Path) -> None:
    assert resolve_owner(_named("ghost", "ghosts"), _passwd_root(tmp_path)) == Owner(0, 0)
    assert resolve_owner(_named("app", None), tmp_path / "no-etc-here") == Owner(0, 0)


def test_chown_lookup_files_resolve_inside_the_rootfs(tmp_path: Path) -> None:
    write_tree(tmp_path, {"host/passwd": "daemon:x:4242:4242::/:/bin/sh\n"})
    rootfs = write_tree(tmp_path / "rootfs", {"etc": ("link", "../../host")})
    assert resolve_owner(_named("daemon", None), rootfs) == Owner(0, 0)


def test_empty_chown_changes_nothing() -> None:
    assert resolve_owner(None, None) is None
    assert resolve_owner(pb.ChownOpt(), None) is None


def test_file_never_replaces_a_directory_by_default(src: Path, dest: Path) -> None:
    write_tree(src, {"d/x": "file"})
    write_tree(dest, {"e/x/inner": ""})
    with pytest.raises(FileOpError, match=r"^cannot replace to directory /e/x with file$"):
        copy(src, dest, copy_action("/d", "/e", dirCopyContents=True), None)


def test_directory_never_replaces_a_file_by_default(src: Path, dest: Path) -> None:
    write_tree(src, {"d/x/inner": ""})
    write_tree(dest, {"e/x": "file"})
    with pytest.raises(FileOpError, match=r"^cannot copy to non-directory: /e/x$"):
        copy(src, dest, copy_action("/d", "/e", dirCopyContents=True), None)


def test_always_replace_lets_a_file_replace_a_directory_and_back(src: Path, dest: Path) -> None:
    write_tree(src, {"d/x": "file", "d/y/inner": "", "d/z": ("link", "x")})
    write_tree(dest, {"e/x/old": "", "e/y": "file", "e/z/": None})
    copy(src, dest, copy_action("/d", "/e", dirCopyContents=True, alwaysReplaceExistingDestPaths=True), None)
    assert listing(dest) == ["e/", "e/x", "e/y/", "e/y/inner", "e/z -> x"]


def test_a_file_replaces_a_link_not_its_target(src: Path, dest: Path) -> None:
    write_tree(src, {"d/x": "new"})
    write_tree(dest, {"target": "keep", "e/x": ("link", "/target")})
    copy(src, dest, copy_action("/d", "/e", dirCopyContents=True), None)
    assert (dest / "target").read_text() == "keep" and not (dest / "e/x").is_symlink()


def test_clone_tree_keeps_everything(src: Path, dest: Path) -> None:
    from pybuildkit.worker.ops.fileops import clone_tree

    write_tree(src, {"d/f": "x", "d/l": ("link", "f"), "top": ""})
    os.link(src / "d/f", src / "hard")
    os.chmod(src, 0o751)
    os.utime(src / "d", ns=(T, T))
    if os.geteuid() == 0:
        os.lchown(src / "d/f", 321, 654)
    clone_tree(src, dest)
    assert listing(dest) == listing(src)
    assert mode_of(dest) == 0o751 and os.stat(dest / "d").st_mtime_ns == T
    assert os.stat(dest / "hard").st_ino == os.stat(dest / "d/f").st_ino
    if os.geteuid() == 0:
        assert os.stat(dest / "d/f").st_uid == 321
