"""Named contexts (`--opt context:NAME=VALUE`) of every kind BuildKit accepts, in real builds.

The fixture registry's `alpine` differs from its `busybox` by `/etc/alpine-release`, which is how
these tests see that a named context replaced the image a Dockerfile names.
"""
from __future__ import annotations

import json
import subprocess
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.frontend.test_realistic_dockerfiles import _build, _context

ALPINE_CHECK = """\
FROM busybox AS base
RUN cat /etc/alpine-release > /out
FROM scratch
COPY --from=base /out /
"""


def test_docker_image_context_replaces_the_image_a_from_names(pybuildctl, tmp_path) -> None:
    """"the context can be accessed when FROM name or --from=name is used" (buildx
    `--build-context`, which sends `context:NAME`): `context:busybox=docker-image://alpine`
    makes `FROM busybox` run on alpine (BuildKit's testNamedImageContext)."""
    out = tmp_path / "out"
    _build(pybuildctl, _context(tmp_path, ALPINE_CHECK), out, "--opt", "context:busybox=docker-image://alpine")
    assert (out / "out").read_text().strip()


def test_a_named_context_replaces_a_stage_of_that_name(pybuildctl, tmp_path) -> None:
    """"When Dockerfile defines a stage with the same name it is overwritten": the stage's own
    instructions do not run (BuildKit's testNamedImageContext, `context:base=docker-image://...`)."""
    dockerfile = "FROM busybox AS base\nRUN echo from-stage > /marker\nFROM base\nRUN [ -f /etc/alpine-release ] && [ ! -f /marker ] && echo ok > /ok\n"
    out = tmp_path / "out"
    _build(pybuildctl, _context(tmp_path, dockerfile), out, "--opt", "context:base=docker-image://alpine:latest")
    assert (out / "ok").read_text() == "ok\n"
    assert not (out / "marker").exists()


def test_docker_image_scratch_is_the_empty_image(pybuildctl, tmp_path) -> None:
    """`docker-image://scratch` gives an empty filesystem (BuildKit's testNamedImageContextScratch)."""
    dockerfile = "FROM busybox AS build\nCOPY <<EOF /out\nhello world!\nEOF\n"
    out = tmp_path / "out"
    _build(pybuildctl, _context(tmp_path, dockerfile), out, "--opt", "context:busybox=docker-image://scratch")
    assert sorted(p.name for p in out.iterdir()) == ["out"]
    assert (out / "out").read_text() == "hello world!\n"


def test_local_context_is_read_with_its_own_dockerignore(pybuildctl, tmp_path) -> None:
    """`context:base=local:basedir` reads the client's `--local basedir=DIR`, honouring that
    directory's .dockerignore (BuildKit's testNamedLocalContext)."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "out").write_text("dummy-result")
    (other / "out2").write_text("dummy-result")
    (other / ".dockerignore").write_text("out2\n")
    dockerfile = "FROM busybox AS base\nRUN cat /etc/alpine-release > /out\nFROM scratch\nCOPY --from=base /o* /\n"
    out = tmp_path / "out"
    _build(pybuildctl, _context(tmp_path, dockerfile), out, "--opt", "context:base=local:basedir",
           "--local", f"basedir={other}")
    assert (out / "out").read_text() == "dummy-result"
    assert not (out / "out2").exists()


@pytest.fixture
def web(tmp_path: Path):
    """A plain HTTP server over `www/`: files, and a git repository served the "dumb" way."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo)})


def test_git_url_context(pybuildctl, web, tmp_path) -> None:
    """A git URL (here `http://.../repo.git#main:sub`, BuildKit's git fragment `#ref:subdir`) is
    cloned as the named context."""
    root, url = web
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "sub").mkdir()
    (work / "sub" / "file.txt").write_text("from git\n")
    (work / "top.txt").write_text("top\n")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "one")
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "repo.git")], check=True)
    _git(root / "repo.git", "update-server-info")
    dockerfile = "FROM scratch\nCOPY --from=src / /\n"
    out = tmp_path / "out"
    _build(pybuildctl, _context(tmp_path, dockerfile), out, "--opt", f"context:src={url}/repo.git#main:sub")
    assert sorted(p.name for p in out.iterdir()) == ["file.txt"]
    assert (out / "file.txt").read_text() == "from git\n"


def test_https_url_context_is_downloaded_as_a_file_named_context(pybuildctl, web, tmp_path) -> None:
    """A URL that is not a git repository is fetched like `ADD <url>`; BuildKit stores it as one
    file named `context` in the named context's root (not unpacked)."""
    root, url = web
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "inside.txt").write_text("inside\n")
    with tarfile.open(root / "bundle.tar", "w") as tar:
        tar.add(payload / "inside.txt", arcname="inside.txt")
    dockerfile = "FROM busybox AS x\nRUN --mount=from=bundle,target=/b tar -xOf /b/context inside.txt > /got\n" \
                 "FROM scratch\nCOPY --from=x /got /\n"
    out = tmp_path / "out"
    _build(pybuildctl, _context(tmp_path, dockerfile), out, "--opt", f"context:bundle={url}/bundle.tar")
    assert (out / "got").read_text() == "inside\n"


def test_oci_layout_context(pybuildctl, tmp_path) -> None:
    """"Source an image from a local OCI layout compliant directory, either by tag, or by digest"
    (`oci-layout://STORE@DIGEST` or `:TAG`, with `--oci-layout STORE=DIR`): the image's config
    comes along, so its ENV reaches the steps (BuildKit's testNamedOCILayoutContext)."""
    first = _context(tmp_path, "FROM busybox\nWORKDIR /test\nRUN echo -n first > out\nENV foo=bar\n")
    archive = tmp_path / "image.tar"
    pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={first}", "--local", f"dockerfile={first}",
                "--output", f"type=oci,dest={archive},name=example.com/first:v1"])
    layout = tmp_path / "layout"
    with tarfile.open(archive) as tar:
        tar.extractall(layout)
    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    (tmp_path / "second").mkdir()
    second = _context(tmp_path / "second", "FROM foo AS imported\nRUN echo -n $foo > /test/outfoo\n"
                                            "FROM scratch\nCOPY --from=imported /test/out /test/outfoo /\n")
    out = tmp_path / "out"
    _build(pybuildctl, second, out, "--opt", f"context:foo=oci-layout://mystore@{digest}",
           "--oci-layout", f"mystore={layout}")
    assert (out / "out").read_text() == "first"
    assert (out / "outfoo").read_text() == "bar"
    by_tag = tmp_path / "by-tag"
    _build(pybuildctl, second, by_tag, "--opt", "context:foo=oci-layout://mystore:v1", "--oci-layout",
           f"mystore={layout}")
    assert (by_tag / "outfoo").read_text() == "bar"


@pytest.mark.parametrize("value, message", [
    ("ftp://example.com/x", "unsupported context source ftp for base"),
    ("docker-imag://alpine", "unsupported context source docker-imag for base"),
    ("input:other", "invalid input other for base"),
    ("alpine", "invalid context specifier alpine for base"),
])
def test_other_sources_are_errors_never_a_docker_hub_fallback(pybuildctl, tmp_path, value, message) -> None:
    """Any other scheme fails as BuildKit's frontend does: "unsupported context source %s for %s"
    (and "invalid context specifier" without a scheme), before anything is pulled."""
    run = _build(pybuildctl, _context(tmp_path, "FROM busybox AS base\nRUN true\n"), tmp_path / "out",
                 "--opt", f"context:base={value}", check=False)
    assert run.returncode == 1
    assert message in run.stderr
    assert "Traceback" not in run.stderr
