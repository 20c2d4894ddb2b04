"""git and http(s) sources against a local git repository and an HTTP server on 127.0.0.1."""
from __future__ import annotations

import hashlib
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pybuildkit.solver.llb import builder as llb


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo)}).stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "sub").mkdir()
    (repo / "sub" / "file.txt").write_text("v1\n")
    (repo / "top.txt").write_text("top\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    _git(repo, "tag", "v1")
    (repo / "sub" / "file.txt").write_text("v2\n")
    _git(repo, "commit", "-q", "-am", "two")
    return repo


@pytest.fixture
def http_server(tmp_path: Path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "payload.bin").write_bytes(b"payload-bytes\n")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_git_source_at_a_tag_with_subdir(pybuildctl, git_repo, tmp_path) -> None:
    state = llb.git(f"file://{git_repo}", "v1", subdir="sub")
    out = tmp_path / "out"
    pybuildctl(["--output", f"type=local,dest={out}"], stdin=state.marshal().SerializeToString())
    assert sorted(p.name for p in out.iterdir()) == ["file.txt"]
    assert (out / "file.txt").read_text() == "v1\n"


def test_git_source_keeps_git_dir_when_asked(pybuildctl, git_repo, tmp_path) -> None:
    state = llb.git(f"file://{git_repo}", "main", keep_git_dir=True)
    out = tmp_path / "out"
    pybuildctl(["--output", f"type=local,dest={out}"], stdin=state.marshal().SerializeToString())
    assert (out / ".git").is_dir()
    assert (out / "sub" / "file.txt").read_text() == "v2\n"


def test_http_source_with_checksum_filename_and_mode(pybuildctl, http_server, tmp_path) -> None:
    digest = "sha256:" + hashlib.sha256(b"payload-bytes\n").hexdigest()
    state = llb.http(f"{http_server}/payload.bin", checksum=digest, filename="renamed.bin", chmod=0o640)
    out = tmp_path / "out"
    pybuildctl(["--output", f"type=local,dest={out}"], stdin=state.marshal().SerializeToString())
    assert (out / "renamed.bin").read_bytes() == b"payload-bytes\n"
    assert (out / "renamed.bin").stat().st_mode & 0o777 == 0o640


def test_http_checksum_mismatch_is_an_error(pybuildctl, http_server) -> None:
    state = llb.http(f"{http_server}/payload.bin", checksum="sha256:" + "0" * 64)
    run = pybuildctl([], stdin=state.marshal().SerializeToString(), check=False)
    assert run.returncode == 1
    assert "digest mismatch" in run.stderr
