"""followpaths, as fsutil reads them: the named paths, and what a named symlink points at."""
from __future__ import annotations

import os
from pathlib import Path

from pybuildkit.worker.fsutil.walk import WalkOptions, walk


def listed(root: Path, *follow: str) -> list[str]:
    return [e.rel for e in walk(root, WalkOptions(follow_paths=follow))]


def test_only_the_named_paths_are_listed(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "other.txt").write_text("x")
    assert listed(tmp_path, "Dockerfile", "Dockerfile.dockerignore", "dockerfile") == ["Dockerfile"]


def test_a_symlinked_path_brings_its_target(tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "real.Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "other.txt").write_text("x")
    os.symlink("docker/real.Dockerfile", tmp_path / "Dockerfile")
    assert listed(tmp_path, "Dockerfile") == ["Dockerfile", "docker", "docker/real.Dockerfile"]


def test_a_symlink_cycle_ends(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    assert listed(tmp_path, "a") == ["a", "b"]
