"""Build cache export and import through the daemonless path, against the real registry."""
from __future__ import annotations

import filecmp
import json
import subprocess
from pathlib import Path

W5 = """\
FROM busybox
RUN echo dependency > /dep.txt
COPY . /src
RUN cat /src/app.txt /dep.txt > /built.txt
"""

MULTI = """\
FROM busybox AS builder
RUN echo intermediate > /artifact
FROM busybox
COPY --from=builder /artifact /artifact
RUN cat /artifact > /final
"""

MOUNTS = """\
FROM busybox
RUN --mount=type=cache,target=/cache,id=pkgs sh -c 'ls /cache > /listing; echo warm > /cache/pkg-$(date +%N)'
"""


def _context(path: Path, dockerfile: str, app: str = "v1") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text(dockerfile)
    (path / "app.txt").write_text(app + "\n")
    return path


def _build(pybuildctl, ctx: Path, out: Path, root: Path, *extra: str):
    return pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                       "--output", f"type=local,dest={out}", *extra], root=root)


def _steps(run, *, cached: bool) -> list[str]:
    return sorted(v["name"] for v in run.vertices().values()
                  if v.get("completed") and bool(v.get("cached")) == cached and v["name"].startswith("[")
                  and not v["name"].startswith("[internal]"))


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def test_registry_cache_max_makes_a_fresh_root_hit_every_step(pybuildctl, registry_host, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx", W5)
    ref = f"{registry_host}/cache/w5:max"
    _build(pybuildctl, ctx, tmp_path / "out1", tmp_path / "root1", "--export-cache", f"type=registry,ref={ref},mode=max")
    second = _build(pybuildctl, ctx, tmp_path / "out2", tmp_path / "root2", "--import-cache", f"type=registry,ref={ref}")
    assert _steps(second, cached=False) == []
    assert any("RUN cat" in name for name in _steps(second, cached=True))
    assert _same_tree(tmp_path / "out1", tmp_path / "out2")


def test_registry_cache_hits_up_to_the_changed_file(pybuildctl, registry_host, tmp_path) -> None:
    ref = f"{registry_host}/cache/w5:changed"
    _build(pybuildctl, _context(tmp_path / "ctx1", W5), tmp_path / "out1", tmp_path / "root1",
           "--export-cache", f"type=registry,ref={ref},mode=max")
    second = _build(pybuildctl, _context(tmp_path / "ctx2", W5, app="v2"), tmp_path / "out2", tmp_path / "root2",
                    "--import-cache", f"type=registry,ref={ref}")
    executed = _steps(second, cached=False)
    assert any("RUN echo dependency" in name for name in _steps(second, cached=True))
    assert not any("RUN echo dependency" in name or "FROM" in name for name in executed)
    assert any("RUN cat" in name for name in executed)
    assert (tmp_path / "out2" / "built.txt").read_text() == "v2\ndependency\n"


def test_local_cache_round_trip(pybuildctl, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx", W5)
    cache = tmp_path / "cache"
    _build(pybuildctl, ctx, tmp_path / "out1", tmp_path / "root1", "--export-cache", f"type=local,dest={cache},mode=max")
    assert (cache / "index.json").exists() and (cache / "oci-layout").exists()
    second = _build(pybuildctl, ctx, tmp_path / "out2", tmp_path / "root2", "--import-cache", f"type=local,src={cache}")
    assert _steps(second, cached=False) == []
    assert _same_tree(tmp_path / "out1", tmp_path / "out2")


def test_inline_cache_imports_from_the_pushed_image(pybuildctl, registry_host, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx", W5)
    image = f"{registry_host}/cache/inline:latest"
    pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                "--output", f"type=image,name={image},push=true", "--export-cache", "type=inline"],
               root=tmp_path / "root1")
    raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--config", "--raw", f"docker://{image}"],
                         capture_output=True, check=True).stdout
    assert "moby.buildkit.cache.v0" in json.loads(raw)
    second = _build(pybuildctl, ctx, tmp_path / "out2", tmp_path / "root2", "--import-cache", f"type=registry,ref={image}")
    assert _steps(second, cached=False) == []


def test_min_mode_does_not_keep_the_intermediate_stage(pybuildctl, registry_host, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx", MULTI)
    hits = {}
    for mode in ("min", "max"):
        ref = f"{registry_host}/cache/multi:{mode}"
        _build(pybuildctl, ctx, tmp_path / f"out-{mode}", tmp_path / f"root-{mode}",
               "--export-cache", f"type=registry,ref={ref},mode={mode}")
        second = _build(pybuildctl, ctx, tmp_path / f"out2-{mode}", tmp_path / f"root2-{mode}",
                        "--import-cache", f"type=registry,ref={ref}")
        hits[mode] = any("echo intermediate" in name for name in _steps(second, cached=True))
    assert hits == {"min": False, "max": True}


def test_cache_mount_contents_travel_with_the_cache(pybuildctl, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx", MOUNTS)
    cache = tmp_path / "cache"
    _build(pybuildctl, ctx, tmp_path / "out1", tmp_path / "root1",
           "--export-cache", f"type=local,dest={cache},mode=max,cache-mounts=true")
    _build(pybuildctl, ctx, tmp_path / "out2", tmp_path / "root2", "--no-cache",
           "--import-cache", f"type=local,src={cache},cache-mounts=true")
    assert (tmp_path / "out2" / "listing").read_text().startswith("pkg-")


def test_exported_manifest_and_config_have_buildkits_shape(pybuildctl, registry_host, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx", W5)
    ref = f"{registry_host}/cache/w5:shape"
    _build(pybuildctl, ctx, tmp_path / "out", tmp_path / "root", "--export-cache", f"type=registry,ref={ref},mode=max")
    manifest = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                                         capture_output=True, check=True).stdout)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.buildkit.cacheconfig.v0"
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        assert layer["annotations"]["containerd.io/uncompressed"].startswith("sha256:")
    config = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--config", "--raw",
                                        f"docker://{ref}"], capture_output=True, check=True).stdout)
    assert set(config) == {"layers", "records"}
    assert {layer["blob"] for layer in config["layers"]} == {layer["digest"] for layer in manifest["layers"]}
    assert all(set(layer) <= {"blob", "parent", "annotations"} for layer in config["layers"])
    assert all(set(layer["annotations"]) <= {"mediaType", "diffID", "size", "createdAt"} for layer in config["layers"])
    assert all(set(r) <= {"digest", "layers", "chains", "inputs"} and r["digest"].startswith("sha256:")
               for r in config["records"])
    assert any(r.get("inputs") for r in config["records"])
    assert all({"link"} <= set(i) for r in config["records"] for alts in r.get("inputs", []) for i in alts)


def test_unknown_cache_type_and_option_are_errors_naming_them(pybuildctl, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx", W5)
    bogus = pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                        "--export-cache", "type=bogus"], check=False)
    assert bogus.returncode != 0 and "'bogus'" in bogus.stderr
    option = pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                         "--export-cache", f"type=local,dest={tmp_path}/c,colour=red"], check=False)
    assert option.returncode != 0 and "'colour'" in option.stderr


def _statuses(run) -> list[dict]:
    return [s for event in run.events for s in event.get("statuses", [])]


def test_import_fetches_only_the_layers_the_build_reads(pybuildctl, registry_host, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx", MULTI)
    ref = f"{registry_host}/cache/multi:lazy"
    _build(pybuildctl, ctx, tmp_path / "out1", tmp_path / "root1", "--export-cache", f"type=registry,ref={ref},mode=max")
    manifest = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                                         capture_output=True, check=True).stdout)
    exported = {layer["digest"] for layer in manifest["layers"]}
    second = _build(pybuildctl, ctx, tmp_path / "out2", tmp_path / "root2", "--import-cache", f"type=registry,ref={ref}")
    fetched = {s["id"].removeprefix("fetching ") for s in _statuses(second) if s["id"].startswith("fetching sha256:")}
    assert fetched and fetched < exported  # the builder stage's own layer stays in the registry
    assert _same_tree(tmp_path / "out1", tmp_path / "out2")


def test_export_and_import_show_as_vertices_with_bytes(pybuildctl, registry_host, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx", W5)
    ref = f"{registry_host}/cache/w5:progress"
    first = _build(pybuildctl, ctx, tmp_path / "out1", tmp_path / "root1",
                   "--export-cache", f"type=registry,ref={ref},mode=max")
    second = _build(pybuildctl, _context(tmp_path / "ctx2", W5, app="v2"), tmp_path / "out2", tmp_path / "root2",
                    "--import-cache", f"type=registry,ref={ref}")
    for run, name in ((first, f"exporting cache to {ref}"), (second, f"importing cache layers from {ref}")):
        vertex = next(v for v in run.vertices().values() if v["name"] == name)
        assert vertex.get("completed") and not vertex.get("error")
        moved = [s for s in _statuses(run) if s.get("vertex") == vertex["digest"] and s.get("total")]
        assert moved and all(s["current"] == s["total"] for s in moved if s.get("completed"))


def test_index_form_with_docker_media_types_round_trips(pybuildctl, registry_host, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx", W5)
    ref = f"{registry_host}/cache/w5:index"
    _build(pybuildctl, ctx, tmp_path / "out1", tmp_path / "root1",
           "--export-cache", f"type=registry,ref={ref},mode=max,image-manifest=false,oci-mediatypes=false")
    index = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                                      capture_output=True, check=True).stdout)
    assert index["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert index["manifests"][-1]["mediaType"] == "application/vnd.buildkit.cacheconfig.v0"
    second = _build(pybuildctl, ctx, tmp_path / "out2", tmp_path / "root2", "--import-cache", f"type=registry,ref={ref}")
    assert _steps(second, cached=False) == []


def test_importing_a_cache_that_does_not_exist_yet_builds_cold(pybuildctl, registry_host, tmp_path) -> None:
    ctx = _context(tmp_path / "ctx", W5)
    run = _build(pybuildctl, ctx, tmp_path / "out", tmp_path / "root",
                 "--import-cache", f"type=registry,ref={registry_host}/cache/never:pushed",
                 "--import-cache", f"type=local,src={tmp_path}/no-such-dir")
    assert any("RUN cat" in name for name in _steps(run, cached=False))
    assert (tmp_path / "out" / "built.txt").read_text() == "v1\ndependency\n"
