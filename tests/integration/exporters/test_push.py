"""Pushing one multi-platform image to several registries, with auth, through failures."""
from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from pybuildkit.solver.llb import builder as llb
from pybuildkit.solver.platforms import parse_platform
from tests.fixtures.flaky_proxy import start_flaky_proxy
from tests.fixtures.registry import start_registry
from tests.fixtures.token_server import start_token_service

PLATFORMS = ["linux/amd64", "linux/arm64", "linux/s390x"]


def _multi_platform_definitions(base_image: str) -> list[bytes]:
    out = []
    for spec in PLATFORMS:
        p = parse_platform(spec)
        st = llb.image(base_image, platform=p).add_env("PATH", llb.DEFAULT_PATH)
        out.append(st.run(["/bin/sh", "-c", "uname -m > /arch"]).root().marshal(p).SerializeToString())
    return out


def _docker_config(directory: Path, auths: dict[str, tuple[str, str]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = {"auths": {host: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
                        for host, (u, p) in auths.items()}}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def _config(path: Path, extra: str, builder_config: Path) -> Path:
    path.write_text(builder_config.read_text() + "\n" + extra)
    return path


@pytest.fixture
def auth_registries(tmp_path):
    tls = start_registry(tmp_path / "tls", tls=True, htpasswd=("alice", "wonder"))
    tokens = start_token_service(tmp_path / "tokens", username="bob", password="builder")
    bearer = start_registry(tmp_path / "bearer", token_auth=tokens.registry_auth_config()["token"])
    try:
        yield tls, bearer, tokens
    finally:
        bearer.stop()
        tokens.stop()
        tls.stop()


def test_three_platform_image_to_two_authenticated_registries(pybuildctl, base_image, builder_config,
                                                              auth_registries, tmp_path) -> None:
    tls, bearer, tokens = auth_registries
    docker_config = _docker_config(tmp_path / "docker", {tls.host: ("alice", "wonder"), bearer.host: ("bob", "builder")})
    config = _config(tmp_path / "cfg.toml", f'[registry."{tls.host}"]\nca = ["{tls.ca_cert}"]\n'
                                             f'[registry."{bearer.host}"]\nhttp = true\n', builder_config)
    names = f'"name={tls.host}/multi/app:1,{bearer.host}/multi/app:1"'
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base_image}\nRUN uname -m > /arch\n")
    pybuildctl(["--frontend", "dockerfile.v0", "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                  "--opt", "platform=" + ",".join(PLATFORMS),
                  "--output", f"type=image,{names},push=true", "--metadata-file", str(tmp_path / "md.json")],
                 env={"DOCKER_CONFIG": str(docker_config)},
                 config=config)
    digest = json.loads((tmp_path / "md.json").read_text())["containerimage.digest"]
    for host, creds in ((tls.host, "alice:wonder"), (bearer.host, "bob:builder")):
        raw = subprocess.run(["skopeo", "inspect", "--raw", "--creds", creds, "--tls-verify=false",
                              f"docker://{host}/multi/app:1"], check=True, capture_output=True).stdout
        assert "sha256:" + __import__("hashlib").sha256(raw).hexdigest() == digest
        platforms = [m["platform"]["architecture"] for m in json.loads(raw)["manifests"]]
        assert platforms == ["amd64", "arm64", "s390x"]
    assert tokens.issued, "the bearer registry was reached through the token service"


def test_the_client_fetches_bearer_tokens_so_its_password_stays_with_it(pybuildctl, base_image, builder_config,
                                                                       auth_registries, tmp_path) -> None:
    """The daemon asks the session's Auth.FetchToken first (as BuildKit does): the token service
    hears only from pybuildctl, and the daemon gets a scoped token, not bob's password."""
    _, bearer, tokens = auth_registries
    docker_config = _docker_config(tmp_path / "docker", {bearer.host: ("bob", "builder")})
    config = _config(tmp_path / "cfg.toml", f'[registry."{bearer.host}"]\nhttp = true\n', builder_config)
    definition = llb.image(base_image).run(["/bin/true"]).root().marshal().SerializeToString()
    pybuildctl(["--output", f"type=image,name={bearer.host}/fetched/by-client:1,push=true"], stdin=definition,
               env={"DOCKER_CONFIG": str(docker_config)}, config=config)
    assert tokens.requesters and set(tokens.requesters) == {"pybuildctl"}, tokens.requesters


def test_bad_credentials_name_the_registry(pybuildctl, base_image, builder_config, auth_registries, tmp_path) -> None:
    tls, _, _ = auth_registries
    docker_config = _docker_config(tmp_path / "docker", {tls.host: ("alice", "wrong")})
    config = _config(tmp_path / "cfg.toml", f'[registry."{tls.host}"]\nca = ["{tls.ca_cert}"]\n', builder_config)
    definition = llb.image(base_image).run(["/bin/true"]).root().marshal().SerializeToString()
    run = pybuildctl(["--output", f"type=image,name={tls.host}/bad/creds:1,push=true"], stdin=definition,
                     env={"DOCKER_CONFIG": str(docker_config)}, config=config, check=False)
    assert run.returncode == 1
    assert tls.host in run.stderr
    assert "Traceback" not in run.stderr


def test_push_survives_500s_and_a_reset(pybuildctl, base_image, registry, builder_config, tmp_path) -> None:
    proxy = start_flaky_proxy(registry.host)
    try:
        config = _config(tmp_path / "cfg.toml", f'[registry."{proxy.host}"]\nhttp = true\n', builder_config)
        definition = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH).run(
            ["/bin/sh", "-c", "echo flaky > /flaky"]).root().marshal().SerializeToString()
        pybuildctl(["--output", f"type=image,name={proxy.host}/flaky/app:1,push=true"], stdin=definition, config=config)
        assert any(f.startswith("500") for f in proxy.failures)
        assert any(f.startswith("reset") for f in proxy.failures)
        subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/flaky/app:1"],
                       check=True, capture_output=True)
    finally:
        proxy.stop()


def test_second_repository_on_the_same_registry_mounts_blobs(pybuildctl, base_image, registry, tmp_path) -> None:
    """The layer goes over the wire once; the second repository gets it by a cross-repository mount."""
    from tests.fixtures.counting_proxy import start_counting_proxy

    proxy = start_counting_proxy(registry.host)
    try:
        config = _config(tmp_path / "cfg.toml", f'[registry."{proxy.host}"]\nhttp = true\n',
                         _builder_config_path(tmp_path, registry))
        definition = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH).run(
            ["/bin/sh", "-c", "head -c 100000 /dev/urandom > /blob"]).root().marshal().SerializeToString()
        names = f'"name={proxy.host}/mount/one:1,{proxy.host}/mount/two:1"'
        pybuildctl(["--output", f"type=image,{names},push=true"], stdin=definition, config=config)
        assert proxy.mounts, "the second repository mounted blobs from the first"
        assert all(count == 1 for count in proxy.uploads.values()), proxy.uploads
        for repo in ("one", "two"):
            subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/mount/{repo}:1"],
                           check=True, capture_output=True)
    finally:
        proxy.stop()


def _builder_config_path(tmp_path: Path, registry) -> Path:
    path = tmp_path / "base.toml"
    path.write_text(f'[registry."docker.io"]\nmirrors = ["{registry.host}"]\n[registry."{registry.host}"]\nhttp = true\n')
    return path
