"""The executor's pure parts: host files, binfmt matching, cgroup layout, mount stubs, spec."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.executor import ExecRequest, Mount, NetMode, SecurityMode
from pybuildkit.binfmt.emulator import BinfmtEntry, elf_header, has_binfmt_handler, read_binfmt_entries
from pybuildkit.worker.executor.hosts import hosts_content, host_resolv_conf, resolv_content
from pybuildkit.worker.executor.mounts import MountStubs, dedup
from pybuildkit.worker.executor.runtime import CgroupLayout, cgroup_layout, exit_zero_elf, in_user_namespace
from pybuildkit.worker.executor.spec import SpecContext, build_spec, cgroups_path, rlimits
from pybuildkit.worker.userdb import ResolvedUser

AARCH64_ENTRY = ("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\n"
                 "magic 7f454c460201010000000000000000000200b700\n"
                 "mask ffffffffffffff00fffffffffffffffffeffffff\n")


def test_hosts_file_names_the_hostname_and_extra_hosts() -> None:
    assert hosts_content("box", (("db", "10.0.0.5"),)) == (
        "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.5\tdb\n")


def test_resolv_conf_drops_loopback_nameservers_and_keeps_the_rest() -> None:
    text = "search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.1\noptions ndots:2\n"
    assert resolv_content(text, NetMode.SANDBOX) == "search example.org\nnameserver 192.0.2.1\noptions ndots:2\n"


def test_resolv_conf_falls_back_to_public_resolvers() -> None:
    out = resolv_content("nameserver 127.0.0.1\nnameserver ::1\n", NetMode.NONE)
    assert [line.split()[1] for line in out.splitlines()] == ["8.8.8.8", "8.8.4.4", "2001:4860:4860::8888",
                                                               "2001:4860:4860::8844"]


def test_host_networking_keeps_loopback_nameservers() -> None:
    assert resolv_content("nameserver 127.0.0.1\n", NetMode.HOST) == "nameserver 127.0.0.1\n"


def test_systemd_resolved_stub_is_replaced_by_its_upstream_servers(tmp_path: Path) -> None:
    main, upstream = tmp_path / "resolv.conf", tmp_path / "upstream.conf"
    main.write_text("nameserver 127.0.0.53\n")
    upstream.write_text("nameserver 192.0.2.7\n")
    assert host_resolv_conf(NetMode.SANDBOX, main, upstream) == "nameserver 192.0.2.7\n"
    assert host_resolv_conf(NetMode.HOST, main, upstream) == "nameserver 127.0.0.53\n"


def test_binfmt_handlers_are_recognised_by_their_magic_not_their_name(tmp_path: Path) -> None:
    (tmp_path / "status").write_text("enabled\n")
    (tmp_path / "some-other-name").write_text(AARCH64_ENTRY)
    entries = read_binfmt_entries(tmp_path)
    assert [e.name for e in entries] == ["some-other-name"]
    assert has_binfmt_handler("arm64", entries)
    assert not has_binfmt_handler("s390x", entries)
    assert not has_binfmt_handler("arm64", [BinfmtEntry("x", False, 0, entries[0].magic, entries[0].mask, "")])


def test_elf_header_of_a_big_endian_arch() -> None:
    header = elf_header("s390x")
    assert header is not None and header[:6] == b"\x7fELF\x02\x02" and header[18:20] == b"\x00\x16"


def test_probe_binary_runs_on_this_cpu(tmp_path: Path) -> None:
    binary = exit_zero_elf()
    if binary is None:
        pytest.skip(f"no probe binary for {os.uname().machine}")
    path = tmp_path / "probe"
    path.write_bytes(binary)
    path.chmod(0o755)
    assert subprocess.run([str(path)]).returncode == 0


def test_cgroup_layouts(tmp_path: Path) -> None:
    def layout(*mounts: tuple[str, str]) -> CgroupLayout:
        info = tmp_path / "mountinfo"
        info.write_text("".join(f"1 2 0:1 / {point} rw - {fstype} x rw\n" for point, fstype in mounts))
        return cgroup_layout(info)

    assert layout(("/sys/fs/cgroup", "cgroup2")) == CgroupLayout.UNIFIED
    assert layout(("/sys/fs/cgroup", "tmpfs"), ("/sys/fs/cgroup/unified", "cgroup2")) == CgroupLayout.HYBRID
    assert layout(("/sys/fs/cgroup", "tmpfs"), ("/sys/fs/cgroup/cpu", "cgroup")) == CgroupLayout.LEGACY
    assert layout(("/", "ext4")) == CgroupLayout.NONE


def test_not_in_a_user_namespace_as_real_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("meaningful only as the host's root")
    assert in_user_namespace() is False


def test_mount_stubs_are_removed_with_parent_timestamps_kept(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "keep").write_text("x")
    stubs = MountStubs.record(tmp_path, ["/etc/hosts", "/run/secrets/a", "/etc/keep"])
    (tmp_path / "etc" / "hosts").touch()
    os.utime(tmp_path / "etc", (1000, 1000))
    (tmp_path / "run" / "secrets").mkdir(parents=True)
    (tmp_path / "run" / "secrets" / "a").touch()
    stubs.remove()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["etc"]
    assert [p.name for p in (tmp_path / "etc").iterdir()] == ["keep"]
    assert (tmp_path / "etc").stat().st_mtime == 1000


def test_mount_stubs_that_got_content_stay(tmp_path: Path) -> None:
    stubs = MountStubs.record(tmp_path, ["/data/file"])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "file").write_text("written by the step")
    stubs.remove()
    assert (tmp_path / "data" / "file").exists()


def test_mount_stubs_never_follow_symlinks_out_of_the_rootfs(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "etc").symlink_to(tmp_path / "outside")
    assert MountStubs.record(rootfs, ["/etc/hosts"]).paths == []


def test_later_mounts_replace_earlier_ones_on_the_same_destination() -> None:
    mounts = [{"destination": "/dev/shm", "type": "tmpfs"}, {"destination": "/a"},
              {"destination": "/dev/shm", "type": "bind"}]
    assert dedup(mounts) == [{"destination": "/a"}, {"destination": "/dev/shm", "type": "bind"}]


def test_cgroups_path_follows_buildkit() -> None:
    assert cgroups_path("system.slice:", "id1") == "system.slice:id1"
    assert cgroups_path("/mine", "id1") == "/mine/buildkit/id1"
    assert cgroups_path(None, "id1") is None


def test_ulimits_override_the_default_nofile() -> None:
    limits = {r["type"]: (r["soft"], r["hard"]) for r in rlimits((("nofile", 10, 20), ("nproc", 5, 6)))}
    assert limits == {"RLIMIT_NOFILE": (10, 20), "RLIMIT_NPROC": (5, 6)}
    with pytest.raises(BuildError, match="invalid ulimit name"):
        rlimits((("bogus", 1, 1),))


def _spec(tmp_path: Path, **overrides: object) -> dict:
    values: dict[str, object] = {"args": ("/bin/true",), "env": ("A=1",), "cwd": "work", "user": "root",
                                 "rootfs": tmp_path}
    values.update(overrides)
    ctx = SpecContext(user=ResolvedUser(1000, 1000, (50,), "/home/b"), hosts_file=tmp_path / "hosts",
                      resolv_file=tmp_path / "resolv.conf", rootless=False, emulator=Path("/usr/bin/qemu-x"))
    return build_spec(ExecRequest(**values), ctx)  # type: ignore[arg-type]


def test_spec_process_user_env_and_emulator(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    process = spec["process"]
    assert process["args"] == ["/dev/.buildkit_qemu_emulator", "/bin/true"]
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [50]}
    assert process["env"] == ["A=1", "HOME=/home/b"]
    assert process["cwd"] == "/work"
    assert process["terminal"] is False
    assert spec["root"] == {"path": str(tmp_path), "readonly": False}
    assert {"destination": "/dev/.buildkit_qemu_emulator", "type": "bind", "source": "/usr/bin/qemu-x",
            "options": ["rbind", "ro"]} in spec["mounts"]


def test_spec_namespaces_per_network_mode(tmp_path: Path) -> None:
    def kinds(network: NetMode) -> list[str]:
        return [n["type"] for n in _spec(tmp_path, network=network)["linux"]["namespaces"]]

    assert kinds(NetMode.NONE) == ["pid", "ipc", "uts", "mount", "network"]
    assert kinds(NetMode.HOST) == ["pid", "ipc", "uts", "mount"]
    assert kinds(NetMode.SANDBOX) == ["pid", "ipc", "uts", "mount"]


def test_spec_without_cgroups_has_no_cgroup_settings(tmp_path: Path) -> None:
    linux = _spec(tmp_path, security=SecurityMode.INSECURE)["linux"]
    assert "cgroupsPath" not in linux and "resources" not in linux
    assert "maskedPaths" not in linux


def test_spec_request_mounts(tmp_path: Path) -> None:
    spec = _spec(tmp_path, mounts=(Mount("/t", "tmpfs", options=("size=1024",)),
                                   Mount("/s", "file", tmp_path / "secret", readonly=True),
                                   Mount("/dev/shm", "bind", tmp_path)))
    by_dest = {m["destination"]: m for m in spec["mounts"]}
    assert by_dest["/t"]["options"] == ["nosuid", "nodev", "size=1024"]
    assert by_dest["/s"]["type"] == "bind" and "ro" in by_dest["/s"]["options"]
    assert by_dest["/dev/shm"]["type"] == "bind", "the step's mount wins over the default /dev/shm"
    with pytest.raises(BuildError, match="unsupported mount type"):
        _spec(tmp_path, mounts=(Mount("/x", "weird", tmp_path),))
