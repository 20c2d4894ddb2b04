"""Helpers for the FileOp backend tests: trees written from dicts, actions with BuildKit's
defaults (mode -1 and timestamp -1 mean unset), and a snapshot-like `new_dir`."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pybuildkit.solver.pb import ops_pb2 as pb

Tree = dict[str, "str | bytes | None | tuple[str, str]"]


def write_tree(root: Path, entries: Tree) -> Path:
    """`name: text` is a file, `name/: None` a directory, `name: ("link", target)` a symlink."""
    root.mkdir(parents=True, exist_ok=True)
    for name, value in entries.items():
        path = root / name.rstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if value is None:
            path.mkdir(exist_ok=True)
        elif isinstance(value, tuple):
            os.symlink(value[1], path)
        else:
            path.write_bytes(value if isinstance(value, bytes) else value.encode())
    return root


def listing(root: Path) -> list[str]:
    """Every entry below root, directories with a trailing slash, links as `name -> target`."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = os.fspath(path.relative_to(root))
            if path.is_symlink():
                out.append(f"{rel} -> {os.readlink(path)}")
            elif path.is_dir():
                out.append(rel + "/")
            else:
                out.append(rel)
    return sorted(out)


def copy_action(src: str, dest: str, **fields: object) -> pb.FileActionCopy:
    fields.setdefault("mode", -1)
    fields.setdefault("timestamp", -1)
    return pb.FileActionCopy(src=src, dest=dest, **fields)


def mode_of(path: Path) -> int:
    return os.lstat(path).st_mode & 0o7777


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    path.mkdir()
    return path


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "dest"
    path.mkdir()
    return path


@pytest.fixture
def new_dir(tmp_path: Path) -> Callable[[Path | None], Path]:
    """A fresh copy of `base` per call (what snapshots give the lead's FileOp)."""
    made: list[Path] = []

    def make(base: Path | None) -> Path:
        path = tmp_path / f"layer{len(made)}"
        if base is None:
            path.mkdir()
        else:
            shutil.copytree(base, path, symlinks=True)
        made.append(path)
        return path

    make.made = made  # type: ignore[attr-defined]
    return make


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: changes owners or makes device nodes")
