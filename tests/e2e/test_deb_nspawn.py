"""The .deb on a real Debian 12 booted with systemd in systemd-nspawn: installed from the file,
socket-activated, used by a plain user for a three-platform build pushed with zstd layers to two
registries, then reinstalled, upgraded and purged."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, require_root
from tests.fixtures.nspawn import Machine, base_tarball, boot, unpack
from tests.fixtures.registry import Registry, start_registry

pytestmark = pytest.mark.integration
SOCK = "/run/pybuildkit/buildkitd.sock"
PLATFORMS = ("linux/amd64", "linux/arm64", "linux/s390x")


def _build_deb(out: Path, version: str = "") -> Path:
    env = {**os.environ, "SKIP_LINTIAN": "1", **({"PYBUILDKIT_DEB_VERSION": version} if version else {})}
    proc = subprocess.run(["bash", str(REPO / "packaging" / "deb" / "build.sh"), str(out)], capture_output=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return next(out.glob("pybuildkit_*_all.deb"))


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("tls-registry"), tls=True, htpasswd=("alice", "wonder"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory, registry: Registry, tls_registry: Registry) -> Iterator[Machine]:
    require_root("systemd-nspawn boots a container")
    for tool in ("debootstrap", "systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (scripts/install-deps.sh installs it)")
    work = tmp_path_factory.mktemp("e2e")
    debs = work / "debs"
    _build_deb(debs)
    _build_deb(debs / "next", "0.2.1")
    root = unpack(base_tarball(), work / "root")
    shutil.copytree(debs, root / "root" / "debs")
    for cached in Path("/var/cache/apt/archives").glob("qemu-user-static_*.deb"):  # saves a download
        (root / "root" / "qemu").mkdir()
        shutil.copy(cached, root / "root" / "qemu" / "qemu-user-static.deb")
        break
    assert tls_registry.ca_cert is not None
    shutil.copy(tls_registry.ca_cert, root / "root" / "registry-ca.pem")
    m = boot(root, f"pbk-e2e-{os.getpid()}")
    try:
        yield m
    finally:
        m.poweroff()


@pytest.fixture(scope="module")
def installed(machine: Machine, registry: Registry, tls_registry: Registry) -> Machine:
    """apt installs the file; the admin configures the registries, starts the socket, adds alice."""
    proc = machine.run("apt-get", "install", "-y", "--no-install-recommends", "/root/debs/pybuildkit_0.2.0_all.deb",
                       timeout=900)
    log = proc.stdout.decode(errors="replace")
    assert "0 newly installed" in log or "1 newly installed" in log, log  # nothing but the package itself
    # the admin also takes the package's Recommends for foreign platforms
    local_qemu = (machine.root / "root" / "qemu" / "qemu-user-static.deb").exists()
    machine.run("apt-get", "install", "-y", "--no-install-recommends",
                "/root/qemu/qemu-user-static.deb" if local_qemu else "qemu-user-static", timeout=900)
    machine.run("install", "-m", "0644", "/root/registry-ca.pem", "/etc/pybuildkit/registry-ca.pem")
    config = (f'[rootless]\nnetwork = "host"  # the test registries are on the host\'s loopback\n\n'
              f'[registry."docker.io"]\nmirrors = ["{registry.host}"]\n\n'
              f'[registry."{registry.host}"]\nhttp = true\n\n'
              f'[registry."{tls_registry.host}"]\nca = ["/etc/pybuildkit/registry-ca.pem"]\n')
    machine.run("tee", "/etc/pybuildkit/pybuildkitd.toml", input=config.encode())
    machine.run("systemctl", "start", "pybuildkit.socket")
    machine.run("useradd", "-m", "-G", "pybuildkit", "alice")
    machine.run("useradd", "-m", "bob")
    auth = base64.b64encode(b"alice:wonder").decode()
    machine.run("runuser", "-u", "alice", "--", "mkdir", "-p", "/home/alice/.docker", "/home/alice/app")
    machine.run("runuser", "-u", "alice", "--", "tee", "/home/alice/.docker/config.json",
                input=json.dumps({"auths": {tls_registry.host: {"auth": auth}}}).encode())
    machine.run("runuser", "-u", "alice", "--", "tee", "/home/alice/app/Dockerfile",
                input=b"FROM busybox\nRUN uname -m > /arch\nCOPY hello.txt /\n")
    machine.run("runuser", "-u", "alice", "--", "tee", "/home/alice/app/hello.txt", input=b"hello from alice\n")
    return machine


def skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True, timeout=120).stdout


def test_the_package_pulls_in_only_debian_packages(machine: Machine) -> None:
    depends = subprocess.run(["dpkg-deb", "-f", str(next((machine.root / "root" / "debs").glob("pybuildkit_*.deb"))),
                              "Depends"],
                             capture_output=True, text=True, check=True).stdout
    assert "python3-grpcio" in depends and "rootlesskit" in depends and "runc | crun" in depends


def test_a_plain_user_builds_three_platforms_and_pushes_zstd_to_two_registries(
        installed: Machine, registry: Registry, tls_registry: Registry, tmp_path: Path) -> None:
    names = f'"name={registry.host}/e2e/app:1,{tls_registry.host}/e2e/app:1"'
    build = installed.run("pybuildctl", "--addr", f"unix://{SOCK}", "--timeout", "120", "build",
                          "--frontend", "dockerfile.v0", "--local", "context=/home/alice/app",
                          "--local", "dockerfile=/home/alice/app", "--opt", "platform=" + ",".join(PLATFORMS),
                          "--progress", "plain", "--output",
                          f"type=image,{names},push=true,compression=zstd,oci-mediatypes=true,force-compression=true",
                          user="alice", timeout=900, check=False)
    assert build.returncode == 0, build.stderr.decode(errors="replace")[-4000:] + installed.text(
        "journalctl", "-u", "pybuildkit.service", "--no-pager", "-n", "60", check=False)
    for host, creds in ((registry.host, []), (tls_registry.host, ["--creds", "alice:wonder"])):
        tls_flag = ["--tls-verify=false"]  # what is checked here is the content, not the certificate
        index = json.loads(skopeo("inspect", "--raw", *tls_flag, *creds, f"docker://{host}/e2e/app:1"))
        assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64", "s390x"]
        arm_digest = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
        arm = json.loads(skopeo("inspect", "--raw", *tls_flag, *creds, f"docker://{host}/e2e/app@{arm_digest}"))
        assert arm["layers"][-1]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    out = tmp_path / "arm64"
    skopeo("copy", "--src-tls-verify=false", "--override-arch", "arm64", "--dest-decompress",
           f"docker://{registry.host}/e2e/app:1", f"dir:{out}")
    assert out.exists()


def test_the_service_runs_as_pybuildkit_and_logs_its_summary(installed: Machine) -> None:
    installed.run("pybuildctl", "--addr", f"unix://{SOCK}", "--timeout", "120", "debug", "workers", user="alice")
    assert installed.text("systemctl", "is-active", "pybuildkit.service").strip() == "active"
    assert installed.text("systemctl", "show", "-p", "User", "pybuildkit.service").strip() == "User=pybuildkit"
    journal = installed.text("journalctl", "-u", "pybuildkit.service", "--no-pager")
    assert "serving fd://buildkitd; runtime " in journal and "snapshotter " in journal and "platforms " in journal
    # Delegate=yes: the daemon's own cgroup, with the daemon in a leaf and the steps beside it
    cgroup = [line for line in journal.splitlines() if "pybuildkitd: cgroup:" in line]
    assert len(cgroup) == 1, journal
    assert "build steps run under the delegated cgroup /system.slice/pybuildkit.service/buildkit" in cgroup[0], journal


def test_a_user_outside_the_group_is_refused_by_the_socket(installed: Machine) -> None:
    proc = installed.run("pybuildctl", "--addr", f"unix://{SOCK}", "--timeout", "10", "debug", "workers",
                         user="bob", check=False)
    assert proc.returncode != 0
    assert "cannot reach the daemon" in proc.stderr.decode() and "ermission denied" in proc.stderr.decode()


def test_reinstall_upgrade_and_purge_leave_a_consistent_system(installed: Machine) -> None:
    m = installed
    subuid_before = m.text("grep", "^pybuildkit:", "/etc/subuid")
    m.run("apt-get", "install", "-y", "--reinstall", "/root/debs/pybuildkit_0.2.0_all.deb")
    assert m.text("grep", "-c", "^pybuildkit:", "/etc/subuid").strip() == "1"
    m.run("apt-get", "install", "-y", "/root/debs/next/pybuildkit_0.2.1_all.deb")
    assert m.text("dpkg-query", "-W", "-f=${Version}", "pybuildkit") == "0.2.1"
    assert m.text("grep", "^pybuildkit:", "/etc/subuid") == subuid_before  # same range, cache kept
    assert m.run("test", "-d", "/var/lib/pybuildkit/snapshots", check=False).returncode == 0
    m.run("systemctl", "stop", "pybuildkit.socket", "pybuildkit.service")
    m.run("apt-get", "purge", "-y", "pybuildkit")
    assert m.run("getent", "passwd", "pybuildkit", check=False).returncode != 0
    assert m.run("getent", "group", "pybuildkit", check=False).returncode != 0
    assert m.run("grep", "-q", "^pybuildkit:", "/etc/subuid", check=False).returncode != 0
    assert m.run("test", "-e", "/var/lib/pybuildkit", check=False).returncode != 0
    assert m.run("test", "-e", "/lib/systemd/system/pybuildkit.socket", check=False).returncode != 0
    assert m.run("test", "-e", "/etc/pybuildkit/pybuildkitd.toml", check=False).returncode != 0
