"""What a step sees inside its container, checked with a real runtime on a busybox rootfs."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from pybuildkit.worker.executor import Mount, NetMode, SecurityMode
from pybuildkit.worker.executor.spec import CAPS_BY_NUMBER, all_caps, default_caps

from .conftest import Runner


def _cap_mask(names: tuple[str, ...]) -> int:
    numbers = {f"CAP_{name}": number for number, name in enumerate(CAPS_BY_NUMBER)}
    return sum(1 << numbers[name] for name in names)


def test_runs_args_with_env_and_cwd(runner: Runner) -> None:
    result = runner.run("/bin/sh", "-c", 'echo "$GREETING"; pwd', env=("PATH=/bin", "GREETING=hello there"),
                        cwd="/tmp")
    assert result.code == 0, result.stderr
    assert result.stdout == "hello there\n/tmp\n"


def test_chosen_runtime_is_logged(runner: Runner, runtime_name: str) -> None:
    runner.run("/bin/true")
    assert runner.executor.info.name == runtime_name
    assert any(f"using {runtime_name}" in line for line in runner.logs)


def test_user_by_name_gets_its_groups_and_home(runner: Runner) -> None:
    result = runner.run("/bin/sh", "-c", 'id; echo "$HOME"', user="builder")
    assert result.code == 0, result.stderr
    ids, home = result.stdout.splitlines()
    assert ids.startswith("uid=1000(builder) gid=1000(builder) groups=")
    assert "50(staff)" in ids
    assert home == "/home/builder"


def test_user_by_uid_and_gid(runner: Runner) -> None:
    result = runner.run("/bin/id", user="1000:50")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("uid=1000(builder) gid=50(staff)")


def test_root_is_uid_zero_without_a_passwd_file(runner: Runner) -> None:
    (runner.rootfs / "etc" / "passwd").unlink()
    result = runner.run("/bin/id", "-u")
    assert (result.code, result.stdout) == (0, "0\n"), result.stderr


def test_home_from_env_is_kept(runner: Runner) -> None:
    result = runner.run("/bin/sh", "-c", 'echo "$HOME"', env=("PATH=/bin", "HOME=/work"))
    assert result.stdout == "/work\n"


def test_hostname(runner: Runner) -> None:
    assert runner.run("/bin/hostname").stdout == "buildkitsandbox\n"
    assert runner.run("/bin/hostname", hostname="myhost").stdout == "myhost\n"


def test_extra_hosts_are_in_etc_hosts(runner: Runner) -> None:
    result = runner.run("/bin/cat", "/etc/hosts", extra_hosts=(("registry.test", "10.1.2.3"),), hostname="box")
    lines = result.stdout.splitlines()
    assert "127.0.0.1\tlocalhost box" in lines
    assert "10.1.2.3\tregistry.test" in lines


def test_resolv_conf_has_no_loopback_nameserver(runner: Runner) -> None:
    result = runner.run("/bin/cat", "/etc/resolv.conf")
    servers = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("nameserver")]
    assert servers
    assert not any(s.startswith("127.") or s == "::1" for s in servers)


def test_hosts_and_resolv_stubs_do_not_stay_in_the_rootfs(runner: Runner) -> None:
    assert runner.run("/bin/true").code == 0
    assert not (runner.rootfs / "etc" / "hosts").exists()
    assert not (runner.rootfs / "etc" / "resolv.conf").exists()


def test_tmpfs_mount_with_size(runner: Runner) -> None:
    result = runner.run("/bin/grep", " /scratch ", "/proc/mounts",
                        mounts=(Mount("/scratch", "tmpfs", options=("size=4194304",)),))
    assert result.code == 0, result.stderr
    assert result.stdout.split()[2] == "tmpfs"
    assert "size=4096k" in result.stdout


def test_readonly_bind_mount_refuses_writes(runner: Runner, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("from the host\n")
    mounts = (Mount("/data", "bind", shared, readonly=True),)
    result = runner.run("/bin/sh", "-c", "cat /data/in.txt; echo x > /data/out.txt", mounts=mounts)
    assert result.stdout == "from the host\n"
    assert result.code != 0
    assert "Read-only file system" in result.stderr
    assert not (shared / "out.txt").exists()


def test_writable_bind_mount_changes_reach_the_host(runner: Runner, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    result = runner.run("/bin/sh", "-c", "echo written > /data/out.txt", mounts=(Mount("/data", "bind", shared),))
    assert result.code == 0, result.stderr
    assert (shared / "out.txt").read_text() == "written\n"


def test_secret_file_mount_keeps_mode_and_owner(runner: Runner, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t")
    os.chown(secret, 1000, 1000)
    secret.chmod(0o400)
    result = runner.run("/bin/sh", "-c", "stat -c '%a %u' /run/secrets/token; cat /run/secrets/token",
                        user="builder", mounts=(Mount("/run/secrets/token", "file", secret, readonly=True),))
    assert result.code == 0, result.stderr
    assert result.stdout == "400 1000\ns3cr3t"
    assert not (runner.rootfs / "run").exists(), "the mount point stub is removed"


def test_network_none_has_only_loopback(runner: Runner) -> None:
    result = runner.run("/bin/cat", "/proc/net/dev", network=NetMode.NONE)
    interfaces = [line.split(":")[0].strip() for line in result.stdout.splitlines()[2:]]
    assert interfaces == ["lo"]


def test_sandbox_network_is_the_executors_network(runner: Runner) -> None:
    result = runner.run("/bin/cat", "/proc/net/dev")
    inside = sorted(line.split(":")[0].strip() for line in result.stdout.splitlines()[2:])
    host = sorted(line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:])
    assert inside == host


def test_exit_code_is_returned(runner: Runner) -> None:
    assert runner.run("/bin/sh", "-c", "exit 7").code == 7


def test_missing_command_fails(runner: Runner) -> None:
    result = runner.run("/bin/does-not-exist")
    assert result.code != 0
    assert "does-not-exist" in result.stderr


def test_stdout_and_stderr_are_separate(runner: Runner) -> None:
    result = runner.run("/bin/sh", "-c", "echo out; echo err >&2; echo out2")
    assert result.stdout == "out\nout2\n"
    assert result.stderr == "err\n"


def test_readonly_rootfs(runner: Runner) -> None:
    result = runner.run("/bin/sh", "-c", "touch /newfile", readonly_rootfs=True)
    assert result.code != 0
    assert not (runner.rootfs / "newfile").exists()


def test_default_and_requested_open_file_limits(runner: Runner) -> None:
    default = int(runner.run("/bin/sh", "-c", "ulimit -n").stdout)
    assert default >= 1024
    assert default <= 1048576
    assert runner.run("/bin/sh", "-c", "ulimit -n", ulimits=(("nofile", 512, 1024),)).stdout == "512\n"


def test_sandbox_has_buildkits_default_capabilities(runner: Runner) -> None:
    status = runner.run("/bin/cat", "/proc/self/status").stdout
    effective = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
    assert int(effective, 16) == _cap_mask(default_caps())


def test_insecure_has_every_capability(runner: Runner) -> None:
    status = runner.run("/bin/cat", "/proc/self/status", security=SecurityMode.INSECURE).stdout
    effective = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
    assert int(effective, 16) == _cap_mask(all_caps())


def test_sandbox_masks_kernel_paths(runner: Runner) -> None:
    assert Path("/proc/timer_list").read_text(), "the host shows timers"
    result = runner.run("/bin/sh", "-c", "wc -c < /proc/timer_list; echo x > /proc/sysrq-trigger")
    assert result.stdout.strip() == "0"
    assert result.code != 0


def test_standard_devices_exist(runner: Runner) -> None:
    result = runner.run("/bin/sh", "-c", "echo gone > /dev/null && head -c 4 /dev/zero | wc -c && ls /dev/shm")
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[0].strip() == "4"
    assert stat.S_ISDIR(os.stat(runner.rootfs).st_mode)
