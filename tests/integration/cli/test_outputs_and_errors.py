"""What a buildctl user meets on day one: outputs, early errors and the failed-step excerpt,
checked with real builds (real daemon, containers and registries)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _context(tmp_path: Path, dockerfile: str, **files: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (ctx / name).write_text(text)
    return ctx


def _dockerfile_args(ctx: Path) -> list[str]:
    return ["--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}"]


def _no_credentials(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "docker-config"
    empty.mkdir(exist_ok=True)
    return {"DOCKER_CONFIG": str(empty)}


FAILING = """\
FROM busybox
RUN echo preparing
RUN echo one && echo two && exit 3
RUN echo never
"""


def test_failed_run_prints_the_step_excerpt_then_the_dockerfile_lines(pybuildctl, base_image, tmp_path) -> None:
    """BuildKit ends a failed build with ` > [2/3] RUN ...:` and the step's last output lines,
    then `Dockerfile:N` with the lines around the instruction, then `error: failed to solve:`
    (recorded from buildctl in compat/client-output/s7_failing_run)."""
    ctx = _context(tmp_path, FAILING)
    run = pybuildctl([*_dockerfile_args(ctx), "--progress", "plain"], check=False)
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    start = lines.index(" > [3/4] RUN echo one && echo two && exit 3:")
    assert lines[start - 1] == "------"
    assert [line.split(" ", 1)[1] for line in lines[start + 1:start + 3]] == ["one", "two"]
    assert lines[start + 3] == "------"
    assert lines[start + 4:start + 11] == [
        "Dockerfile:3", "-" * 20, "   1 |     FROM busybox", "   2 |     RUN echo preparing",
        "   3 | >>> RUN echo one && echo two && exit 3", "   4 |     RUN echo never", "   5 |     "]
    assert lines[-1] == ('error: failed to solve: process "/bin/sh -c echo one && echo two && exit 3" '
                         "did not complete successfully: exit code: 3")


def test_plain_progress_shows_the_internal_steps_in_order(pybuildctl, base_image, tmp_path) -> None:
    """plain output starts like buildctl's: `[internal] load build definition from Dockerfile`
    (`transferring dockerfile: NB`), `[internal] load .dockerignore`, `[internal] load metadata
    for IMAGE`, and `[internal] load build context` with `transferring context: NB`; steps are
    numbered in order of first appearance and each closes with DONE and its duration."""
    ctx = _context(tmp_path, "FROM busybox\nCOPY a /a\nRUN cat /a\n", a="hello\n")
    (ctx / ".dockerignore").write_text("b\n")
    run = pybuildctl([*_dockerfile_args(ctx), "--progress", "plain"])
    lines = run.stderr.splitlines()
    size = len((ctx / "Dockerfile").read_bytes())
    assert lines[0] == "#1 [internal] load build definition from Dockerfile"
    assert lines[1].startswith(f"#1 transferring dockerfile: {size}B") and lines[1].endswith(" done")
    assert lines[2].startswith("#1 DONE ") and lines[2].endswith("s")
    headers = [line for line in lines if line.startswith("#") and line.split(" ", 1)[0] in
               {f"#{n}" for n in range(1, 20)} and " [" in line[:6]]
    names = {}
    for line in headers:
        number, name = line.split(" ", 1)
        names.setdefault(name, int(number[1:]))
    assert names["[internal] load .dockerignore"] == 2
    assert names["[internal] load metadata for docker.io/library/busybox:latest"] == 3
    assert sorted(names.values()) == list(names.values())  # numbers grow in order of first appearance
    assert any(line.startswith(f"#{names['[internal] load build context']} transferring context: ")
               and line.endswith(" done") for line in lines)
    assert "#2 transferring context: 2B done" in lines
    assert f"#{names['[3/3] RUN cat /a']} DONE" in " ".join(lines)


def test_oci_tar_false_writes_a_layout_directory_and_metadata_like_buildctl(pybuildctl, base_image,
                                                                            tmp_path) -> None:
    """oci exporter: `tar=false` exports "an OCI layout directory instead of a tarball"; the
    metadata file has buildctl's keys, with `containerimage.descriptor` as a JSON object and
    `image.name` normalized."""
    ctx = _context(tmp_path, "FROM busybox\nRUN echo built > /built\n")
    layout = tmp_path / "layout"
    metadata = tmp_path / "metadata.json"
    pybuildctl([*_dockerfile_args(ctx), "--output", f"type=oci,tar=false,name=app:v1,dest={layout}",
                "--metadata-file", str(metadata)])
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    assert (layout / "blobs" / "sha256" / manifest_digest.split(":")[1]).is_file()
    inspected = subprocess.run(["skopeo", "inspect", f"oci:{layout}"], capture_output=True, text=True, check=True)
    assert json.loads(inspected.stdout)["Digest"] == manifest_digest
    data = json.loads(metadata.read_text())
    assert data["containerimage.descriptor"]["digest"] == manifest_digest
    assert data["containerimage.digest"] == manifest_digest
    assert data["containerimage.config.digest"].startswith("sha256:")
    assert data["image.name"] == "docker.io/library/app:v1"
    assert data["buildx.build.ref"].startswith("pybuildkit/pybuildkit0/")


@pytest.mark.parametrize("make_args,message", [
    (lambda t: ["--output", f"type=local,dest={t / 'file'}"], "destination directory {t}/file is a file"),
    (lambda t: ["--output", f"type=oci,dest={t}"], "destination file {t} is a directory"),
    (lambda t: ["--output", f"type=docker,dest={t / 'no' / 'x.tar'}"], "directory {t}/no does not exist"),
    (lambda t: ["--metadata-file", str(t / "no" / "md.json")], "--metadata-file {t}/no/md.json: directory"),
    (lambda t: ["--output", "type=tar", "--output", "type=oci,dest=-"], "multiple outputs configured to write"),
    (lambda t: ["--output", "type=image,compresion=zstd"], "unknown option 'compresion'"),
    (lambda t: ["--opt", "target"], "--opt: invalid value 'target'"),
    (lambda t: ["--allow", "network.hots"], "unknown entitlement network.hots"),
], ids=["local-dest-file", "file-dest-dir", "missing-dir", "metadata-dir", "two-stdout", "exporter-option",
        "opt", "allow"])
def test_flag_mistakes_fail_before_anything_runs(pybuildctl, tmp_path, make_args, message) -> None:
    """One clear message naming the flag and path, a hint once, and no build (no progress at all)."""
    (tmp_path / "file").write_text("x")
    ctx = _context(tmp_path, "FROM busybox\n")
    run = pybuildctl([*_dockerfile_args(ctx), *make_args(tmp_path)], check=False)
    assert run.returncode == 1
    assert run.events == []
    assert message.format(t=tmp_path) in run.stderr
    assert run.stderr.count("hint:") <= 1
    assert "Traceback" not in run.stderr


def test_unusable_root_is_named_before_a_daemon_starts(builder_config, tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    proc = subprocess.run([sys.executable, "-m", "pybuildkit.appliance.cli.main", "--daemonless", "--root",
                           str(tmp_path / "file" / "state"), "--config", str(builder_config), "build",
                           "--frontend", "dockerfile.v0", "--local", f"context={tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert f"--root {tmp_path}/file/state: cannot be created: {tmp_path}/file is not a directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_registry_with_an_unknown_ca_names_it_and_the_config_keys(pybuildctl, tls_registry_factory,
                                                                  tmp_path) -> None:
    """BuildKit's registry config: `ca` adds a registry's CA, `insecure` skips verification."""
    reg = tls_registry_factory(tls=True)
    ctx = _context(tmp_path, f"FROM {reg.host}/library/base:1\n")
    run = pybuildctl(_dockerfile_args(ctx), check=False)
    assert run.returncode == 1
    assert f"failed to do request to {reg.host}: tls: failed to verify certificate" in run.stderr
    assert f'[registry."{reg.host}"] ca = ' in run.stderr and "insecure = true" in run.stderr
    assert run.stderr.count("hint:") == 1


def test_401_on_pull_names_the_registry_once(pybuildctl, tls_registry_factory, tmp_path) -> None:
    reg = tls_registry_factory(tls=False, htpasswd=("alice", "wonder"))
    ctx = _context(tmp_path, f"FROM {reg.host}/library/base:1\n")
    run = pybuildctl(_dockerfile_args(ctx), check=False, env=_no_credentials(tmp_path))
    assert run.returncode == 1
    assert f"failed to authorize: 401 Unauthorized from {reg.host}" in run.stderr
    assert run.stderr.count("hint:") == 1 and f"log in to {reg.host}" in run.stderr


def test_a_mirrors_error_is_not_hidden_behind_the_upstreams(pybuildctl, tls_registry_factory, tmp_path) -> None:
    """A docker.io mirror that refuses us (401) is named even though the upstream fails too."""
    mirror = tls_registry_factory(tls=False, htpasswd=("alice", "wonder"))
    config = tmp_path / "pybuildkitd.toml"
    config.write_text(f'[registry."docker.io"]\nmirrors = ["{mirror.host}"]\n\n[registry."{mirror.host}"]\nhttp = true\n')
    ctx = _context(tmp_path, "FROM busybox\n")
    run = pybuildctl(_dockerfile_args(ctx), check=False, config=config, env=_no_credentials(tmp_path),
                     root=tmp_path / "root")
    assert run.returncode == 1
    assert f"mirror {mirror.host}: failed to authorize: 401 Unauthorized from {mirror.host}" in run.stderr


def test_registry_insecure_pushes_to_a_registry_with_an_unknown_ca(pybuildctl, base_image, tls_registry_factory,
                                                                   tmp_path) -> None:
    """Image exporter: `registry.insecure=true` "push to insecure HTTP registry" (and skips
    certificate verification); without it the push fails naming the registry."""
    reg = tls_registry_factory(tls=True)
    ctx = _context(tmp_path, "FROM busybox\nRUN echo pushed > /p\n")
    refused = pybuildctl([*_dockerfile_args(ctx), "--output", f"type=image,name={reg.host}/app:1,push=true"],
                         check=False)
    assert refused.returncode == 1 and "failed to verify certificate" in refused.stderr
    pybuildctl([*_dockerfile_args(ctx), "--output",
                f"type=image,name={reg.host}/app:1,push=true,registry.insecure=true"])
    inspected = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{reg.host}/app:1"],
                               capture_output=True, text=True, check=True)
    assert json.loads(inspected.stdout)["Name"] == f"{reg.host}/app"


def test_a_failed_push_closes_its_step_with_error(pybuildctl, base_image, tls_registry_factory, tmp_path) -> None:
    """plain: the export step of a push the registry refuses ends in `ERROR`, not silence."""
    reg = tls_registry_factory(tls=False, htpasswd=("alice", "wonder"))
    ctx = _context(tmp_path, "FROM busybox\n")
    run = pybuildctl([*_dockerfile_args(ctx), "--progress", "plain", "--output",
                      f"type=image,name={reg.host}/app:1,push=true"], check=False, env=_no_credentials(tmp_path))
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    number = next(line.split(" ")[0] for line in lines if line.endswith(" exporting to image"))
    assert any(line.startswith(f"{number} ERROR: ") and "401" in line for line in lines)
