"""Layer sizes for `du` and GC: what each layer takes on disk, measured outside the interpreter."""
from __future__ import annotations

import os
from pathlib import Path

from pybuildkit.appliance.daemon.usage import _tree_sizes


def test_a_file_hardlinked_into_two_layers_counts_in_each(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "sub").mkdir(parents=True)
    b.mkdir()
    (a / "sub" / "data").write_bytes(os.urandom(1 << 20))
    os.link(a / "sub" / "data", b / "data")
    sizes = _tree_sizes([a, b])
    assert sizes[a] >= 1 << 20 and sizes[b] >= 1 << 20


def test_a_layer_that_cannot_be_read_has_no_size(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    sizes = _tree_sizes([here, tmp_path / "gone"])
    assert here in sizes and tmp_path / "gone" not in sizes
