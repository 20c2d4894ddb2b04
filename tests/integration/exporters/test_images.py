"""Image outputs, verified by independent tools: skopeo, umoci, runc, gzip and tar."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess


from pybuildkit.solver.llb import builder as llb
from pybuildkit.solver.platforms import parse_platform

COMPRESSIONS = ["uncompressed", "gzip", "zstd", "estargz"]


def _definition(base_image: str, text: str, platform: str | None = None) -> bytes:
    p = parse_platform(platform) if platform else None
    base = llb.image(base_image, platform=p).add_env("PATH", llb.DEFAULT_PATH)
    state = base.run(["/bin/sh", "-c", f"mkdir -p /app && echo '{text}' > /app/hello.txt && "
                                       "printf '#!/bin/sh\\ncat /app/hello.txt\\n' > /app/hello && chmod +x /app/hello"]).root()
    return state.marshal(p).SerializeToString()


def skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True).stdout


def test_each_compression_round_trips_through_skopeo(pybuildctl, base_image, registry_host, tmp_path) -> None:
    definition = _definition(base_image, "compressions")
    for compression in COMPRESSIONS:
        name = f"{registry_host}/test/compress:{compression}"
        pybuildctl(["--output", f"type=image,name={name},push=true,compression={compression},"
                                "oci-mediatypes=true,force-compression=true"], stdin=definition)
        raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{name}"))
        config = json.loads(skopeo("inspect", "--config", "--raw", "--tls-verify=false", f"docker://{name}"))
        out = tmp_path / compression
        skopeo("copy", "--src-tls-verify=false", "--dest-decompress", f"docker://{name}", f"dir:{out}")
        decompressed = json.loads((out / "manifest.json").read_text())
        digests = [layer["digest"] for layer in decompressed["layers"]]
        assert digests == config["rootfs"]["diff_ids"], compression
        if compression == "zstd":
            assert raw["layers"][-1]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
        if compression == "estargz":
            top = raw["layers"][-1]
            assert "containerd.io/snapshot/stargz/toc.digest" in top["annotations"]
            assert "io.containers.estargz.uncompressed-size" in top["annotations"]


def test_estargz_layers_pass_independent_checks(pybuildctl, base_image, tmp_path) -> None:
    from pybuildkit.worker.compression.estargz import verify_estargz

    dest = tmp_path / "image.tar"
    pybuildctl(["--output", f"type=oci,dest={dest},compression=estargz,force-compression=true,oci-mediatypes=true"],
               stdin=_definition(base_image, "estargz"))
    layout = tmp_path / "layout"
    layout.mkdir()
    subprocess.run(["tar", "-xf", str(dest), "-C", str(layout)], check=True)
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest).read_text())
    for layer in manifest["layers"]:
        blob = layout / "blobs" / "sha256" / layer["digest"].split(":")[1]
        listing = subprocess.run(f"gzip -dc {blob} | tar t", shell=True, check=True, capture_output=True, text=True)
        assert "stargz.index.json" in listing.stdout
        report = verify_estargz(blob)
        assert layer["annotations"]["containerd.io/snapshot/stargz/toc.digest"] == report.toc_digest
        footer = blob.read_bytes()[-51:]
        assert footer[:2] == b"\x1f\x8b" and footer[12:14] == b"SG" and footer[16:38].endswith(b"STARGZ")


def test_gzip_image_unpacks_with_umoci_and_runs_under_runc(pybuildctl, base_image, registry_host, tmp_path) -> None:
    name = f"{registry_host}/test/umoci:latest"
    pybuildctl(["--output", f"type=image,name={name},push=true"], stdin=_definition(base_image, "hello from umoci"))
    skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{tmp_path / 'oci'}:latest")
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{tmp_path / 'oci'}:latest", str(bundle)],
                   check=True, capture_output=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/app/hello"]
    (bundle / "config.json").write_text(json.dumps(spec))
    proc = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "run", "--bundle", str(bundle),
                           f"umoci-{os.getpid()}"], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "hello from umoci", proc.stderr


def test_oci_and_docker_tarballs_are_readable_by_skopeo(pybuildctl, base_image, tmp_path) -> None:
    definition = _definition(base_image, "tarballs")
    oci_tar, docker_tar = tmp_path / "img.oci.tar", tmp_path / "img.docker.tar"
    pybuildctl(["--output", f"type=oci,dest={oci_tar},name=example.com/t/oci:v1"], stdin=definition)
    pybuildctl(["--output", f"type=docker,dest={docker_tar},name=example.com/t/docker:v1"], stdin=definition)
    oci = json.loads(skopeo("inspect", f"oci-archive:{oci_tar}"))
    docker = json.loads(skopeo("inspect", f"docker-archive:{docker_tar}"))
    assert oci["Layers"] and docker["Layers"]
    assert len(oci["Layers"]) == len(docker["Layers"])


def test_reproducible_with_source_date_epoch(pybuildctl, base_image, tmp_path) -> None:
    definition = _definition(base_image, "reproducible")
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    pybuildctl(["--output", f"type=oci,dest={first},rewrite-timestamp=true"], stdin=definition,
               root=tmp_path / "state-a", env=env)
    pybuildctl(["--output", f"type=oci,dest={second},rewrite-timestamp=true"], stdin=definition,
               root=tmp_path / "state-b", env=env)
    assert hashlib.sha256(first.read_bytes()).hexdigest() == hashlib.sha256(second.read_bytes()).hexdigest()


def test_unknown_exporter_option_is_a_clear_error(pybuildctl, base_image, tmp_path) -> None:
    run = pybuildctl(["--output", f"type=oci,dest={tmp_path / 'x.tar'},compresion=zstd"],
                     stdin=_definition(base_image, "bad option"), check=False)
    assert run.returncode == 1
    assert "unknown option 'compresion'" in run.stderr


def test_the_hosts_exporter_defaults_apply_when_the_client_says_nothing(pybuildctl, base_image, registry_host,
                                                                        builder_config, tmp_path) -> None:
    """`[exporter.image] compression = "zstd"` in pybuildkitd.toml: a host can default to zstd."""
    config = tmp_path / "pybuildkitd.toml"
    config.write_text(builder_config.read_text() + '\n[exporter.image]\ncompression = "zstd"\n'
                      'oci-mediatypes = true\nforce-compression = true\n')
    definition = _definition(base_image, "defaults")
    zstd_name, gzip_name = f"{registry_host}/test/defaults:zstd", f"{registry_host}/test/defaults:gzip"
    pybuildctl(["--output", f"type=image,name={zstd_name},push=true"], stdin=definition, config=config)
    pybuildctl(["--output", f"type=image,name={gzip_name},push=true,compression=gzip"], stdin=definition,
               config=config)
    zstd = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{zstd_name}"))
    gzip = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{gzip_name}"))
    assert {layer["mediaType"] for layer in zstd["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    assert {layer["mediaType"] for layer in gzip["layers"]} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
