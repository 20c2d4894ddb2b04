"""Layers from registries cannot write outside their snapshot, and whiteouts do what OCI says."""
from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pybuildkit.worker.layer.diff import changes_between, changes_from_overlay_upper, write_layer_tar
from pybuildkit.worker.layer.unpack import LayerError, apply_layer


def _tar(*entries: tuple[str, str, bytes | str]) -> io.BytesIO:
    """entries: (kind, name, data-or-linkname); kind in file, dir, symlink, hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                payload = data if isinstance(data, bytes) else data.encode()
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
            tar.addfile(info)
    buf.seek(0)
    return buf


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "sentinel").write_text("untouched")
    return dest, outside


def _outside_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["sentinel"]
    assert (outside / "sentinel").read_text() == "untouched"


def test_dotdot_names_stay_inside(sandbox) -> None:
    dest, outside = sandbox
    stats = apply_layer(_tar(("file", "../outside/evil", "x"), ("file", "a/../../../escape", "y")), dest)
    _outside_untouched(outside)
    assert (dest / "outside" / "evil").read_text() == "x"
    assert (dest / "escape").read_text() == "y"
    assert stats.neutralised


def test_absolute_names_are_made_relative(sandbox) -> None:
    dest, outside = sandbox
    apply_layer(_tar(("file", f"{outside}/abs", "z")), dest)
    _outside_untouched(outside)
    assert (dest / str(outside).lstrip("/") / "abs").read_text() == "z"


@pytest.mark.parametrize("target", ["ABS", "../../outside", "../../../../../../../../../outside"])
def test_writes_through_planted_symlinks_stay_inside(sandbox, target: str) -> None:
    dest, outside = sandbox
    link_target = str(outside) if target == "ABS" else target
    apply_layer(_tar(("symlink", "link", link_target), ("file", "link/sentinel", "overwritten")), dest)
    _outside_untouched(outside)


def test_symlink_loops_to_parent_stay_inside(sandbox) -> None:
    dest, outside = sandbox
    apply_layer(_tar(("symlink", "up", ".."), ("file", "up/up/up/up/sentinel", "x")), dest)
    _outside_untouched(outside)
    assert (dest / "sentinel").read_text() == "x"


def test_hardlink_to_outside_is_refused(sandbox) -> None:
    dest, outside = sandbox
    with pytest.raises(LayerError, match="invalid hardlink"):
        apply_layer(_tar(("hardlink", "stolen", str(outside / "sentinel"))), dest)
    _outside_untouched(outside)


def test_hardlink_through_symlink_to_outside_is_refused(sandbox) -> None:
    dest, outside = sandbox
    with pytest.raises(LayerError):
        apply_layer(_tar(("symlink", "out", str(outside)), ("hardlink", "stolen", "out/sentinel")), dest)
    _outside_untouched(outside)


def test_whiteouts_and_opaque_dirs_delete(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    apply_layer(_tar(("dir", "keep", b""), ("file", "keep/a", "a"), ("file", "gone", "g"),
                     ("dir", "op", b""), ("file", "op/old", "o")), dest)
    apply_layer(_tar(("file", ".wh.gone", b""), ("dir", "op", b""), ("file", "op/.wh..wh..opq", b""),
                     ("file", "op/new", "n")), dest)
    assert not (dest / "gone").exists()
    assert (dest / "keep" / "a").exists()
    assert sorted(p.name for p in (dest / "op").iterdir()) == ["new"]


def test_overlay_mode_writes_whiteout_devices_and_opaque_xattr(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod of whiteout devices needs (mapped) root")
    upper = tmp_path / "upper"
    upper.mkdir()
    apply_layer(_tar(("file", ".wh.gone", b""), ("dir", "op", b""), ("file", "op/.wh..wh..opq", b"")), upper,
                whiteout_mode="overlay")
    st = os.lstat(upper / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    changes = changes_from_overlay_upper(upper)
    assert [(c.path, c.kind) for c in changes] == [("gone", "delete"), ("op", "add"), ("op", "opaque")]


def test_diff_tar_round_trip(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for root in (lower, upper):
        (root / "dir").mkdir(parents=True)
        (root / "dir" / "same").write_text("same")
        os.utime(root / "dir" / "same", (1, 1))
    (lower / "removed").write_text("bye")
    (upper / "dir" / "added").write_text("new")
    os.symlink("dir/added", upper / "link")
    changes = changes_between(lower, upper)
    assert {(c.path, c.kind) for c in changes} == {("removed", "delete"), ("dir", "modify"),
                                                  ("dir/added", "add"), ("link", "add")}
    buf = io.BytesIO()
    write_layer_tar(changes, upper, buf, source_date_epoch=100)
    buf.seek(0)
    import shutil
    result = tmp_path / "result"
    shutil.copytree(lower, result, symlinks=True)
    apply_layer(buf, result)
    assert sorted(str(p.relative_to(result)) for p in result.rglob("*")) == ["dir", "dir/added", "dir/same", "link"]
    assert os.lstat(result / "dir" / "added").st_mtime == 100


def test_layer_tar_is_deterministic(tmp_path: Path) -> None:
    upper = tmp_path / "u"
    (upper / "a").mkdir(parents=True)
    (upper / "a" / "f").write_text("x")
    outs = []
    for _ in range(2):
        buf = io.BytesIO()
        write_layer_tar(changes_between(None, upper), upper, buf, source_date_epoch=5)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1]
