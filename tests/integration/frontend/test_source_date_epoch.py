"""SOURCE_DATE_EPOCH given as `--opt build-arg:SOURCE_DATE_EPOCH=N` or as the environment variable.

Real Dockerfile builds exported as OCI tarballs, each from an empty state directory, then read
back blob by blob.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from tests.integration.frontend.test_realistic_dockerfiles import _context

EPOCH = 1700000000
CREATED = "2023-11-14T22:13:20Z"
DOCKERFILE = """\
FROM busybox
RUN echo built > /built && mkdir -p /data && echo x > /data/file
COPY hello.txt /hello.txt
"""


def _oci(pybuildctl, ctx: Path, dest: Path, state: Path, *extra: str, env: dict | None = None) -> None:
    pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                "--output", f"type=oci,dest={dest},rewrite-timestamp=true", *extra], root=state, env=env)


def _blobs(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name.rsplit("/", 1)[-1]: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile() and m.name.startswith("blobs/")}


def _image(archive: Path) -> tuple[dict, list[bytes]]:
    """(config, layer blobs) of the single-platform image in an OCI tarball."""
    blobs = _blobs(archive)
    with tarfile.open(archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    manifest = json.loads(blobs[index["manifests"][0]["digest"].split(":", 1)[1]])
    config = json.loads(blobs[manifest["config"]["digest"].split(":", 1)[1]])
    layers = [blobs[layer["digest"].split(":", 1)[1]] for layer in manifest["layers"]]
    return config, layers


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_arg_epoch_sets_created_history_and_layer_mtimes(pybuildctl, tmp_path) -> None:
    """BuildKit's docs/build-repro.md: `buildctl build --frontend dockerfile.v0 --opt
    build-arg:SOURCE_DATE_EPOCH=$(git log -1 --pretty=%ct)`; "The build arg value is used for:
    the `created` timestamp in the OCI Image Config, the `created` timestamp in the `history`
    objects", and with the `rewrite-timestamp=true` exporter option for the file timestamps in
    the layers."""
    ctx = _context(tmp_path, DOCKERFILE, {"hello.txt": "hello\n"})
    dest = tmp_path / "arg.tar"
    _oci(pybuildctl, ctx, dest, tmp_path / "state", "--opt", f"build-arg:SOURCE_DATE_EPOCH={EPOCH}",
         env={"SOURCE_DATE_EPOCH": ""})
    config, layers = _image(dest)
    assert config["created"] == CREATED
    assert config["history"] and all(h["created"] == CREATED for h in config["history"])
    own = layers[-2:]  # the RUN and COPY layers this build made
    for blob in own:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as layer:
            mtimes = {m.name: m.mtime for m in layer.getmembers()}
        assert mtimes and all(t <= EPOCH for t in mtimes.values()), mtimes


def test_build_arg_and_environment_forms_are_byte_identical(pybuildctl, tmp_path) -> None:
    """Reproducible output from both forms of the epoch: "The `buildctl` CLI (>= v0.13) [...]
    automatically propagate[s] the `$SOURCE_DATE_EPOCH` environment value from the client host to
    the `SOURCE_DATE_EPOCH` build arg", so builds from empty state with either form, or twice
    with one form, give the same tarball byte for byte."""
    ctx = _context(tmp_path, DOCKERFILE, {"hello.txt": "hello\n"})
    arg = ["--opt", f"build-arg:SOURCE_DATE_EPOCH={EPOCH}"]
    _oci(pybuildctl, ctx, tmp_path / "arg1.tar", tmp_path / "s1", *arg, env={"SOURCE_DATE_EPOCH": ""})
    _oci(pybuildctl, ctx, tmp_path / "arg2.tar", tmp_path / "s2", *arg, env={"SOURCE_DATE_EPOCH": ""})
    _oci(pybuildctl, ctx, tmp_path / "env1.tar", tmp_path / "s3", env={"SOURCE_DATE_EPOCH": str(EPOCH)})
    _oci(pybuildctl, ctx, tmp_path / "env2.tar", tmp_path / "s4", env={"SOURCE_DATE_EPOCH": str(EPOCH)})
    digests = {name: _sha(tmp_path / f"{name}.tar") for name in ("arg1", "arg2", "env1", "env2")}
    assert len(set(digests.values())) == 1, digests


def test_environment_epoch_reaches_the_dockerfile_as_a_build_arg(pybuildctl, tmp_path) -> None:
    """"The Dockerfile frontend supports consuming the `SOURCE_DATE_EPOCH` value as a special
    build arg": the environment value arrives as that build arg, so `ARG SOURCE_DATE_EPOCH` sees
    it; an explicit `--opt build-arg:SOURCE_DATE_EPOCH` wins over the variable."""
    ctx = _context(tmp_path, "FROM busybox AS b\nARG SOURCE_DATE_EPOCH\n"
                             "RUN echo \"$SOURCE_DATE_EPOCH\" > /epoch\nFROM scratch\nCOPY --from=b /epoch /\n")
    out_env, out_opt = tmp_path / "env", tmp_path / "opt"
    base = ["--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}"]
    pybuildctl([*base, "--output", f"type=local,dest={out_env}"], env={"SOURCE_DATE_EPOCH": "1234"})
    pybuildctl([*base, "--output", f"type=local,dest={out_opt}", "--opt", "build-arg:SOURCE_DATE_EPOCH=99"],
               env={"SOURCE_DATE_EPOCH": "1234"})
    assert (out_env / "epoch").read_text() == "1234\n"
    assert (out_opt / "epoch").read_text() == "99\n"
