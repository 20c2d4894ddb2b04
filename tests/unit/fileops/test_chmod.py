"""`--chmod` symbolic modes mean what chmod(1) makes of them (with umask 0)."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from pybuildkit.worker.ops.fileops.chmod import InvalidModeError, parse_mode
from pybuildkit.worker.process import run

CASES = [
    ("go-w", 0o666, False), ("u=rw,g=r,o=r", 0o666, False), ("a+X", 0o666, False), ("a+X", 0o124, True),
    ("a+X", 0o744, False), ("go-w", 0o124, True), ("u+rw,g+r,o-x,o+w", 0o124, True), ("+x", 0o644, False),
    ("u=rwx,go=rx", 0o600, False), ("a-rwx", 0o777, False), ("u+x-w", 0o644, False), ("o=u", 0o751, False),
    ("ug+s", 0o755, False), ("+t", 0o755, True), ("a=r,u+w", 0o000, False), ("g=", 0o777, False),
]


def _chmod_tool(mode: str, start: int, is_dir: bool, tmp_path: Path) -> int:
    path = tmp_path / "entry"
    if is_dir:
        path.mkdir()
    else:
        path.write_text("")
    os.chmod(path, start)
    run(["sh", "-c", 'umask 0 && chmod "$0" "$1"', mode, str(path)])
    result = os.stat(path).st_mode & 0o7777
    shutil.rmtree(path) if is_dir else path.unlink()
    return result


@pytest.mark.parametrize(("mode", "start", "is_dir"), CASES)
def test_symbolic_mode_matches_chmod(mode: str, start: int, is_dir: bool, tmp_path: Path) -> None:
    kind = stat.S_IFDIR if is_dir else stat.S_IFREG
    assert parse_mode(mode).apply(kind | start) == _chmod_tool(mode, start, is_dir, tmp_path)


def test_octal_string_sets_the_mode_outright() -> None:
    assert parse_mode("0755").apply(stat.S_IFREG | 0o600) == 0o755
    assert parse_mode("4711").apply(stat.S_IFREG | 0o600) == 0o4711


@pytest.mark.parametrize("bad", ["u+q", "x+u", "u+", "", "888", "u+r,,g+r", "rwx"])
def test_invalid_modes_are_refused(bad: str) -> None:
    if bad == "u+":  # chmod(1) accepts an empty permission list: a no-op
        assert parse_mode(bad).apply(stat.S_IFREG | 0o640) == 0o640
        return
    with pytest.raises(InvalidModeError, match="invalid chmod parameter"):
        parse_mode(bad)
