"""A hostile layer cannot write, link or delete anything outside the directory it is applied to."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pybuildkit.worker.layer.unpack import LayerError, apply_layer

from .tarbuild import directory, file, hardlink, layer, symlink


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "root" / "dest"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Host-side files the layer must not touch: siblings and parents of dest."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "sentinel").write_text("untouched")
    (tmp_path / "root" / "sentinel").parent.mkdir(exist_ok=True)
    (tmp_path / "root" / "sentinel").write_text("untouched")
    return path


def assert_untouched(tmp_path: Path) -> None:
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["sentinel"]
    assert (tmp_path / "outside" / "sentinel").read_text() == "untouched"
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["dest", "sentinel"]
    assert (tmp_path / "root" / "sentinel").read_text() == "untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "root"]


def test_dotdot_names_land_inside_and_are_reported(dest: Path, outside: Path, tmp_path: Path) -> None:
    stats = apply_layer(layer(file("../outside/sentinel", "x"), file("a/../../../../escape", "y")), dest)
    assert_untouched(tmp_path)
    assert (dest / "outside" / "sentinel").read_text() == "x"
    assert (dest / "escape").read_text() == "y"
    assert any("../outside/sentinel" in note for note in stats.neutralised)


def test_absolute_names_lose_their_leading_slash(dest: Path, outside: Path, tmp_path: Path) -> None:
    stats = apply_layer(layer(file(f"{outside}/sentinel", "z")), dest)
    assert_untouched(tmp_path)
    assert (dest / str(outside).lstrip("/") / "sentinel").read_text() == "z"
    assert stats.neutralised


@pytest.mark.parametrize("target", ["ABSOLUTE", "../../outside", "../" * 12 + "outside"])
def test_writes_through_a_planted_symlink_stay_inside(dest: Path, outside: Path, tmp_path: Path,
                                                      target: str) -> None:
    link_target = str(outside) if target == "ABSOLUTE" else target
    apply_layer(layer(symlink("link", link_target), file("link/sentinel", "overwritten")), dest)
    assert_untouched(tmp_path)
    assert os.readlink(dest / "link") == link_target


def test_absolute_symlink_to_etc_writes_the_layers_etc(dest: Path, tmp_path: Path) -> None:
    before = Path("/etc/passwd").read_bytes()
    apply_layer(layer(symlink("a", "/etc"), file("a/passwd", "root::0:0::/:/bin/sh\n")), dest)
    assert Path("/etc/passwd").read_bytes() == before
    assert (dest / "etc" / "passwd").read_text() == "root::0:0::/:/bin/sh\n"


def test_symlink_replaced_by_file_is_not_followed(dest: Path, outside: Path, tmp_path: Path) -> None:
    apply_layer(layer(symlink("s", str(outside / "sentinel")), file("s", "replaced")), dest)
    assert_untouched(tmp_path)
    assert (dest / "s").read_text() == "replaced" and not (dest / "s").is_symlink()


def test_symlink_chain_to_parent_stays_inside(dest: Path, outside: Path, tmp_path: Path) -> None:
    apply_layer(layer(symlink("up", ".."), directory("d"), symlink("d/up", "../up"),
                      file("up/up/d/up/up/up/sentinel", "x")), dest)
    assert_untouched(tmp_path)
    assert (dest / "sentinel").read_text() == "x"


def test_hardlink_to_a_host_file_is_refused(dest: Path, outside: Path, tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="stolen"):
        apply_layer(layer(hardlink("stolen", str(outside / "sentinel"))), dest)
    assert_untouched(tmp_path)


def test_hardlink_with_dotdot_to_a_host_file_is_refused(dest: Path, outside: Path, tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="invalid hardlink"):
        apply_layer(layer(hardlink("stolen", "../../outside/sentinel")), dest)
    assert_untouched(tmp_path)


def test_hardlink_through_a_planted_symlink_is_refused(dest: Path, outside: Path, tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="invalid hardlink"):
        apply_layer(layer(symlink("out", str(outside)), hardlink("stolen", "out/sentinel")), dest)
    assert_untouched(tmp_path)
    assert not (dest / "stolen").exists()


@pytest.mark.parametrize("name", [".wh..", "sub/.wh..", ".wh..wh..", ".wh."])
def test_whiteouts_naming_dot_or_dotdot_delete_nothing(dest: Path, outside: Path, tmp_path: Path,
                                                       name: str) -> None:
    (dest / "keep").write_text("k")
    (dest / "sub").mkdir()
    try:
        apply_layer(layer(file(name)), dest)
    except LayerError as exc:
        assert name in str(exc)
    assert_untouched(tmp_path)
    assert (dest / "keep").read_text() == "k" and (dest / "sub").is_dir()


def test_whiteout_through_a_symlink_deletes_inside_only(dest: Path, outside: Path, tmp_path: Path) -> None:
    apply_layer(layer(symlink("o", str(outside)), file("o/.wh.sentinel")), dest)
    assert_untouched(tmp_path)


def test_opaque_marker_through_a_symlink_clears_inside_only(dest: Path, outside: Path, tmp_path: Path) -> None:
    apply_layer(layer(symlink("o", "../../outside"), file("o/.wh..wh..opq")), dest)
    assert_untouched(tmp_path)


def test_error_names_the_entry(dest: Path) -> None:
    with pytest.raises(LayerError, match="plain/child"):
        apply_layer(layer(file("plain", "a file"), file("plain/child", "x")), dest)


def test_garbage_is_an_invalid_layer(dest: Path) -> None:
    import io

    with pytest.raises(LayerError, match="invalid layer"):
        apply_layer(io.BytesIO(b"\x01" * 1024), dest)


def test_symlink_loop_is_refused_naming_the_entry(dest: Path, outside: Path, tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="a/x"):
        apply_layer(layer(symlink("a", "b"), symlink("b", "a"), file("a/x", "loop")), dest)
    assert_untouched(tmp_path)
