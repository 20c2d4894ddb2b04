"""The snapshot store on the real kernel: overlayfs layers, views, merges and crash recovery."""
from __future__ import annotations

import os

import pytest

from pybuildkit.worker.snapshot.store import Driver, SnapshotStore


@pytest.fixture(params=["auto", "fuse-overlayfs", "native"])
def store(request, tmp_path) -> SnapshotStore:
    if os.geteuid() != 0:
        pytest.skip("mounting overlayfs needs (mapped) root")
    s = SnapshotStore(tmp_path / "snapshots", driver=request.param)
    yield s
    s.close()


def _layer(store: SnapshotStore, parent, files: dict[str, str], remove: tuple[str, ...] = ()):
    layer = store.new_layer(parent)
    with layer.mounted() as root:
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        for name in remove:
            (root / name).unlink()
    return layer.commit(description="test")


def test_auto_prefers_overlayfs_here(tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    store = SnapshotStore(tmp_path / "s")
    assert store.driver == Driver.OVERLAY


def test_layers_stack_and_deletions_hide_lower_files(store) -> None:
    base = _layer(store, None, {"a.txt": "a", "dir/b.txt": "b"})
    top = _layer(store, base, {"c.txt": "c"}, remove=("a.txt",))
    with store.view(top) as view:
        assert sorted(str(p.relative_to(view)) for p in view.rglob("*") if p.is_file()) == ["c.txt", "dir/b.txt"]
    with store.view(base) as view:
        assert (view / "a.txt").read_text() == "a"


def test_merge_puts_later_inputs_on_top(store) -> None:
    left = _layer(store, None, {"same.txt": "left", "l.txt": "l"})
    right = _layer(store, None, {"same.txt": "right", "r.txt": "r"})
    merged = store.merge([left, right])
    with store.view(merged) as view:
        assert (view / "same.txt").read_text() == "right"
        assert (view / "l.txt").exists() and (view / "r.txt").exists()


def test_reopened_store_sees_committed_snapshots(store, tmp_path) -> None:
    snap = _layer(store, None, {"kept.txt": "k"})
    again = SnapshotStore(store.root, driver=store.driver.value)
    assert again.get(snap.id) == snap
    again.close()


def test_check_removes_unfinished_layers_and_dangling_snapshots(store) -> None:
    snap = _layer(store, None, {"x": "x"})
    unfinished = store.new_layer(snap)
    (unfinished.path / "half").write_text("written before the crash")
    lost = _layer(store, snap, {"y": "y"})
    os.rename(store.layer_path(lost.layers[-1]), store.layer_path(lost.layers[-1]) .with_name("gone"))
    notes = store.check()
    assert not unfinished.path.exists()
    assert store.get(lost.id) is None
    assert store.get(snap.id) is not None
    assert any("unfinished" in n for n in notes)
