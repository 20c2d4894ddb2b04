"""A mirror's saved state: read back as it was written, taken off the disk as it is read, and
ignored when the file is not one whole state."""
from __future__ import annotations

from pathlib import Path

from pybuildkit.worker.mirrorstate import MirrorState, save_states, state_path, take_saved

STATE = MirrorState("listing-digest", "sha256:checksum", frozenset({b"entry one", b"entry two"}), "sha256:walk")


def test_a_saved_state_is_read_back_once(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    save_states({mirror: STATE})
    assert take_saved(mirror) == STATE
    assert not state_path(mirror).exists()
    assert take_saved(mirror) is None


def test_a_state_without_entries_keeps_none(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    state = MirrorState("l", "c", None, "w")
    save_states({mirror: state})
    assert take_saved(mirror) == state


def test_a_truncated_state_is_ignored_and_removed(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    save_states({mirror: STATE})
    path = state_path(mirror)
    path.write_bytes(path.read_bytes()[:-5])
    assert take_saved(mirror) is None
    assert not path.exists()


def test_a_file_of_another_format_is_ignored(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    state_path(mirror).write_bytes(b"pbk-mirror-state 0 py3.11\nwhatever")
    assert take_saved(mirror) is None
