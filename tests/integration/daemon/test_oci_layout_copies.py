"""A build's copy of the client's `--oci-layout` store lives under the daemon's root and is gone
when the build ends: nothing is left in the system's temp dir, build after build."""
from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon.conftest import Daemon, start_daemon

pytestmark = pytest.mark.integration


@pytest.fixture
def private_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The daemon's TMPDIR, so the test sees only what this daemon leaves there."""
    tmp = tmp_path_factory.mktemp("daemon-tmp")
    monkeypatch.setenv("TMPDIR", str(tmp))
    return tmp


@pytest.fixture
def tmp_daemon(private_tmp: Path, builder_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("daemon-root"), builder_config, tmp_path_factory.mktemp("daemon-run"))
    try:
        yield d
    finally:
        d.stop()


def _ctl(daemon: Daemon, *args: str) -> None:
    cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", daemon.address, "build",
           "--frontend", "dockerfile.v0", *args]
    proc = subprocess.run(cmd, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace") + daemon.log()[-3000:]


def _context(path: Path, dockerfile: str, **files: str) -> Path:
    path.mkdir()
    (path / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_oci_layout_copies_are_removed_when_the_build_ends(tmp_daemon: Daemon, private_tmp: Path,
                                                           tmp_path: Path) -> None:
    first = _context(tmp_path / "first", "FROM scratch\nCOPY f /f\n", f="from the layout\n")
    archive = tmp_path / "image.tar"
    _ctl(tmp_daemon, "--local", f"context={first}", "--local", f"dockerfile={first}",
         "--output", f"type=oci,dest={archive},name=example.com/first:v1")
    layout = tmp_path / "layout"
    with tarfile.open(archive) as tar:
        tar.extractall(layout)
    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    second = _context(tmp_path / "second", "FROM foo AS imported\nFROM scratch\nCOPY --from=imported /f /g\n")
    for number in range(2):
        out = tmp_path / f"out-{number}"
        _ctl(tmp_daemon, "--local", f"context={second}", "--local", f"dockerfile={second}",
             "--opt", f"context:foo=oci-layout://mystore@{digest}", "--oci-layout", f"mystore={layout}",
             "--output", f"type=local,dest={out}")
        assert (out / "g").read_text() == "from the layout\n"
    assert sorted(p.name for p in private_tmp.glob("oci-layout-*")) == []
    assert sorted(p.name for p in tmp_daemon.root.rglob("oci-layout-*")) == []
