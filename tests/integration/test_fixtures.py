"""The shared fixtures are themselves checked: the pushed base images, the user database and
`adduser` of the rootfs, the extra registries, and the rule that a skip fails a CI run."""
from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, require_root
from tests.fixtures.base_image import GROUP, PASSWD, applet_names, build_layout, busybox_binary, deb_for, rootfs_tar
from tests.fixtures.registry import Registry

INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
EXPECTED_PLATFORMS = ["linux/amd64", "linux/arm64", "linux/s390x", "linux/ppc64le", "linux/arm/v7", "linux/386"]


def _platform_name(platform: dict) -> str:
    return "/".join(filter(None, (platform["os"], platform["architecture"], platform.get("variant"))))


def _skopeo_raw(reference: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reference}"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def _blob(registry: Registry, repository: str, digest: str) -> bytes:
    response = httpx.get(f"{registry.url}/v2/{repository}/blobs/{digest}", follow_redirects=True, timeout=30)
    response.raise_for_status()
    return response.content


def _layer_tar(registry: Registry, repository: str, manifest_digest: str) -> bytes:
    manifest = httpx.get(f"{registry.url}/v2/{repository}/manifests/{manifest_digest}",
                         headers={"Accept": MANIFEST_TYPE}, timeout=30).json()
    return gzip.decompress(_blob(registry, repository, manifest["layers"][0]["digest"]))


def _read_member(tar_bytes: bytes, path: str) -> str | None:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        try:
            member = tar.extractfile(path)
        except KeyError:
            return None
        return member.read().decode() if member else None


@pytest.fixture(scope="module")
def amd64_rootfs_tar() -> bytes:
    busybox = busybox_binary(deb_for("amd64"))
    return rootfs_tar(busybox, applet_names(busybox), alpine=False)


@dataclass(frozen=True)
class Chroot:
    root: Path

    def __call__(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["chroot", str(self.root), "/bin/sh", "-c", script], capture_output=True, text=True,
                              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, timeout=60)


@pytest.fixture
def chroot(amd64_rootfs_tar: bytes, tmp_path: Path) -> Chroot:
    """A fresh amd64 rootfs of the base image to run shell scripts in."""
    require_root("chroot into the fixture rootfs")
    if os.uname().machine != "x86_64":
        pytest.skip("the adduser checks chroot into the amd64 rootfs and need an x86_64 host")
    root = tmp_path / "rootfs"
    root.mkdir()
    subprocess.run(["tar", "-x", "-p", "-C", str(root)], input=amd64_rootfs_tar, check=True)
    return Chroot(root)


# --- the pushed images -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["busybox", "alpine"])
def test_pushed_index_lists_six_platforms_in_order(registry_host: str, name: str) -> None:
    index = _skopeo_raw(f"{registry_host}/library/{name}:latest")
    assert index["mediaType"] == INDEX_TYPE
    assert [_platform_name(m["platform"]) for m in index["manifests"]] == EXPECTED_PLATFORMS
    assert {m["mediaType"] for m in index["manifests"]} == {MANIFEST_TYPE}


def test_each_platform_config_names_its_architecture(registry: Registry) -> None:
    index = _skopeo_raw(f"{registry.host}/library/busybox:latest")
    for entry in index["manifests"]:
        manifest = _skopeo_raw(f"{registry.host}/library/busybox@{entry['digest']}")
        config = json.loads(_blob(registry, "library/busybox", manifest["config"]["digest"]))
        assert (config["os"], config["architecture"], config.get("variant")) == (
            entry["platform"]["os"], entry["platform"]["architecture"], entry["platform"].get("variant"))
        assert config["config"]["Cmd"] == ["sh"]
        assert any(env.startswith("PATH=") and "/bin" in env for env in config["config"]["Env"])
        assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"]) == 1


def test_base_image_fixture_names_busybox_in_the_registry(base_image: str, registry_host: str) -> None:
    assert base_image == f"{registry_host}/library/busybox:latest"


def test_user_database_matches_the_real_busybox_image(registry: Registry) -> None:
    index = _skopeo_raw(f"{registry.host}/library/busybox:latest")
    layer = _layer_tar(registry, "library/busybox", index["manifests"][0]["digest"])
    assert _read_member(layer, "etc/passwd") == PASSWD
    assert _read_member(layer, "etc/group") == GROUP
    assert _read_member(layer, "etc/passwd").splitlines()[0] == "root:x:0:0:root:/root:/bin/sh"
    assert "wheel:x:10:root" in _read_member(layer, "etc/group").splitlines()
    shadow = _read_member(layer, "etc/shadow").splitlines()
    assert [line.split(":")[0] for line in shadow] == [line.split(":")[0] for line in PASSWD.splitlines()]
    assert all(line.split(":")[1] in ("*", "!") for line in shadow)


def test_only_alpine_has_alpine_release(registry: Registry) -> None:
    layers = {name: _layer_tar(registry, f"library/{name}",
                               _skopeo_raw(f"{registry.host}/library/{name}:latest")["manifests"][1]["digest"])
              for name in ("busybox", "alpine")}
    assert _read_member(layers["busybox"], "etc/alpine-release") is None
    assert _read_member(layers["alpine"], "etc/alpine-release")


def test_rootfs_has_applets_in_bin_and_the_usual_directories(registry: Registry) -> None:
    index = _skopeo_raw(f"{registry.host}/library/busybox:latest")
    with tarfile.open(fileobj=io.BytesIO(_layer_tar(registry, "library/busybox",
                                                     index["manifests"][0]["digest"]))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["bin/uname"].issym()
    assert members["usr/sbin/adduser"].isfile() and members["usr/sbin/adduser"].mode == 0o755
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    for directory in ("home", "root", "var", "usr/bin", "etc"):
        assert members[directory].isdir()
    assert {(m.uid, m.gid, m.mtime) for m in members.values()} == {(0, 0, 0)}


def test_arm64_rootfs_unpacked_with_umoci_runs_under_qemu(registry_host: str, tmp_path: Path) -> None:
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() or os.uname().machine == "aarch64":
        pytest.skip("no qemu-aarch64 binfmt handler registered (install qemu-user-static, binfmt-support)")
    layout = tmp_path / "oci"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--override-arch", "arm64",
                    f"docker://{registry_host}/library/busybox:latest", f"oci:{layout}:arm64"],
                   check=True, capture_output=True)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:arm64", str(bundle)],
                   check=True, capture_output=True)
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc" / "passwd").read_text() == PASSWD
    out = subprocess.run([str(rootfs / "bin" / "busybox"), "uname", "-m"], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "aarch64"


# --- the layout ---------------------------------------------------------------------------------

def test_rootfs_layer_is_reproducible(amd64_rootfs_tar: bytes) -> None:
    busybox = busybox_binary(deb_for("amd64"))
    assert rootfs_tar(busybox, applet_names(busybox), alpine=False) == amd64_rootfs_tar


def test_layout_is_cached_between_calls() -> None:
    first = build_layout("busybox")
    assert build_layout("busybox") == first
    index = json.loads((first / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"


# --- adduser / addgroup -------------------------------------------------------------------------

def test_adduser_d_creates_user_group_and_home(chroot) -> None:
    result = chroot("adduser -D user && id user && stat -c '%U %G %a' /home/user")
    assert result.returncode == 0, result.stderr
    assert "uid=1000(user) gid=1000(user)" in result.stdout
    assert result.stdout.splitlines()[-1] == "user user 2755"
    passwd = (chroot.root / "etc/passwd").read_text().splitlines()
    assert passwd[-1] == "user:x:1000:1000:Linux User,,,:/home/user:/bin/sh"
    assert (chroot.root / "etc/group").read_text().splitlines()[-1] == "user:x:1000:"
    assert (chroot.root / "etc/shadow").read_text().splitlines()[-1].startswith("user:!:")


def test_adduser_with_uid_group_and_no_home(chroot) -> None:
    result = chroot("adduser -D -H -u 2000 -G wheel bob && id bob")
    assert result.returncode == 0, result.stderr
    assert "uid=2000(bob) gid=10(wheel)" in result.stdout
    assert "wheel:x:10:root,bob" in (chroot.root / "etc/group").read_text().splitlines()
    assert not (chroot.root / "home/bob").exists()


def test_system_user_in_a_system_group(chroot) -> None:
    result = chroot("addgroup -S svc && adduser -S -H -G svc svc-user && id svc-user")
    assert result.returncode == 0, result.stderr
    assert "uid=100(svc-user) gid=101(svc)" in result.stdout
    assert (chroot.root / "etc/passwd").read_text().splitlines()[-1].endswith(":/home/svc-user:/bin/false")


def test_second_user_gets_the_next_ids_and_duplicates_are_refused(chroot) -> None:
    assert chroot("adduser -D one && adduser -D two").returncode == 0
    assert "two:x:1001:1001:" in (chroot.root / "etc/passwd").read_text()
    duplicate = chroot("adduser -D one")
    assert duplicate.returncode != 0 and "in use" in duplicate.stderr


def test_addgroup_adds_an_existing_user_to_a_group(chroot) -> None:
    result = chroot("adduser -D carol && addgroup carol audio && addgroup carol video && id -Gn carol")
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == ["audio", "carol", "video"]
    assert "audio:x:29:carol" in (chroot.root / "etc/group").read_text().splitlines()


def test_addgroup_is_a_link_to_adduser(chroot) -> None:
    assert (chroot.root / "usr/sbin/addgroup").readlink() == Path("adduser")


# --- extra registries ---------------------------------------------------------------------------

def test_tls_registry_with_htpasswd_asks_for_credentials(tls_registry_factory) -> None:
    reg = tls_registry_factory(tls=True, htpasswd=("alice", "wonder"))
    assert reg.url == f"https://{reg.host}" and reg.ca_cert is not None
    assert httpx.get(reg.url + "/v2/", verify=str(reg.ca_cert)).status_code == 401
    assert httpx.get(reg.url + "/v2/", verify=str(reg.ca_cert), auth=("alice", "wonder")).status_code == 200


def test_stopped_registry_releases_its_port(tls_registry_factory) -> None:
    reg = tls_registry_factory(tls=False)
    assert httpx.get(reg.url + "/v2/").status_code == 200
    reg.stop()
    with pytest.raises(httpx.HTTPError):
        httpx.get(reg.url + "/v2/", timeout=2)
    reg.stop()  # idempotent


def test_builder_config_mirrors_docker_io_to_the_test_registry(builder_config: Path, registry_host: str) -> None:
    config = tomllib.loads(builder_config.read_text())
    assert config["registry"]["docker.io"]["mirrors"] == [registry_host]
    assert config["registry"][registry_host]["http"] is True


# --- the CI rule ------------------------------------------------------------------------------

def _run_inner_pytest(tmp_path: Path, test_source: str, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(test_source))
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"), str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


SKIPPING_TESTS = """
    import pytest

    def test_skips():
        pytest.skip("no frobnicator here")

    @pytest.mark.allow_skip_in_ci("only on s390 hosts")
    def test_allowed_skip():
        pytest.skip("not an s390 host")

    @pytest.mark.xfail(reason="known bug")
    def test_known_bug():
        assert False
"""


def test_skip_fails_the_run_under_ci(tmp_path: Path) -> None:
    result = _run_inner_pytest(tmp_path, SKIPPING_TESTS, ci="true")
    assert result.returncode == 1, result.stdout
    assert "skipped under CI=true" in result.stdout and "no frobnicator here" in result.stdout
    assert "1 failed" in result.stdout and "1 skipped" in result.stdout and "1 xfailed" in result.stdout


def test_skip_is_only_a_skip_outside_ci(tmp_path: Path) -> None:
    result = _run_inner_pytest(tmp_path, SKIPPING_TESTS, ci="")
    assert result.returncode == 0, result.stdout
    assert "2 skipped" in result.stdout


def test_module_level_skip_fails_under_ci(tmp_path: Path) -> None:
    result = _run_inner_pytest(tmp_path, """
        import pytest
        pytest.skip("module needs a frobnicator", allow_module_level=True)
    """, ci="true")
    assert result.returncode != 0, result.stdout
    assert "module needs a frobnicator" in result.stdout
