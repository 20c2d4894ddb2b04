"""The persisted file-digest memo keeps one row an inode (its latest key), so that a context
rebuilt many times does not grow it, and a restart reads what was saved."""
from __future__ import annotations

from pathlib import Path

from pybuildkit.worker.metadata import MetadataStore


def test_a_newer_key_of_an_inode_replaces_the_older_one(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "worker.db")
    store.save_file_digests({(1, 42, 10, 100, 200): "a" * 64})
    store.save_file_digests({(1, 42, 10, 100, 300): "a" * 64})
    store.save_file_digests({(1, 43, 5, 100, 300): "b" * 64})
    store.close()
    reopened = MetadataStore(tmp_path / "worker.db")
    assert reopened.file_digests() == {(1, 42, 10, 100, 300): "a" * 64, (1, 43, 5, 100, 300): "b" * 64}
