"""A local source's snapshot is a hardlinked copy of the mirror whose checksum was just taken:
the content checksum a COPY of all of it needs is then known without walking the snapshot,
and it is exactly what the walk finds."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from pybuildkit.solver.scheduler import Dep
from pybuildkit.worker.worker import Worker, WorkerConfig

pytestmark = pytest.mark.integration


def _mirror(root: Path) -> Path:
    mirror = root / "mirror"
    (mirror / "d").mkdir(parents=True)
    (mirror / "d" / "f.txt").write_text("f\n")
    (mirror / "run.sh").write_text("#!/bin/sh\n")
    (mirror / "run.sh").chmod(0o755)
    os.symlink("d/f.txt", mirror / "link")
    return mirror


@pytest.mark.parametrize("wildcard,follow", [(True, True), (False, True), (True, False)])
def test_the_known_checksum_of_a_local_snapshot_is_what_the_walk_finds(tmp_path: Path, wildcard: bool,
                                                                       follow: bool) -> None:
    worker = Worker(WorkerConfig(root=tmp_path / "root"))
    try:
        mirror = _mirror(tmp_path)
        root_checksum = worker.checksums.checksum(mirror, "/")
        walked = worker.snapshots.import_directory(mirror, None, hardlink=True)
        known = worker.snapshots.import_directory(mirror, None, hardlink=True)
        worker.same_tree_as(known, root_checksum)
        dep = Dep(("/",), True, wildcard, follow)
        assert asyncio.run(worker.content_checksum(known, dep)) == asyncio.run(worker.content_checksum(walked, dep))
    finally:
        worker.close()
