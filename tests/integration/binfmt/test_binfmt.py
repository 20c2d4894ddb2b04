"""pybuildkit-binfmt and the binfmt side of the daemon, with real QEMU and real namespaces."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pybuildkit.binfmt.emulator import ARCHES, BINFMT_MISC, EmulatorPolicy
from pybuildkit.binfmt.probe import exit_program, runs
from pybuildkit.binfmt.register import PREFIX, interpreter_for
from tests.conftest import require_root

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "pybuildkit.binfmt.cli"]


def snapshot_host_entries() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(BINFMT_MISC.iterdir()) if p.name != "register"}


@pytest.fixture
def host_binfmt():
    require_root("it writes /proc/sys/fs/binfmt_misc")
    if not (BINFMT_MISC / "register").exists():
        pytest.fail("binfmt_misc is not mounted (scripts/install-deps.sh mounts it)")
    before = snapshot_host_entries()
    yield before
    subprocess.run([*CLI, "uninstall", "all"], capture_output=True)


def test_install_status_uninstall_round_trip_leaves_other_entries_alone(host_binfmt) -> None:
    installable = [a for a in ARCHES if interpreter_for(a) and a not in ("amd64", "386")]
    assert installable, "qemu-user-static is installed by scripts/install-deps.sh"
    proc = subprocess.run([*CLI, "install", ",".join(installable)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for arch in installable:
        entry = (BINFMT_MISC / f"{PREFIX}{arch}").read_text()
        assert entry.startswith("enabled") and "flags: " in entry and "F" in entry.split("flags: ")[1]
    others = {k: v for k, v in snapshot_host_entries().items() if not k.startswith(PREFIX)}
    assert others == {k: v for k, v in host_binfmt.items() if not k.startswith(PREFIX)}
    status = json.loads(subprocess.run([*CLI, "status", "--json"], capture_output=True, text=True, check=True).stdout)
    by_platform = {p["platform"]: p for p in status["platforms"]}
    assert by_platform["linux/amd64"]["how"] == "native"
    assert by_platform["linux/arm64"]["how"] == "binfmt"
    assert subprocess.run([*CLI, "uninstall", "all"], capture_output=True).returncode == 0
    assert not [p for p in BINFMT_MISC.iterdir() if p.name.startswith(PREFIX)]
    assert snapshot_host_entries() == {k: v for k, v in host_binfmt.items() if not k.startswith(PREFIX)}


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_each_exit_program_runs_where_an_emulator_exists(arch: str) -> None:
    """The probe programs are real executables: each runs natively or under its QEMU."""
    if interpreter_for(arch) is None and arch not in ("amd64", "386"):
        pytest.fail(f"no QEMU for {arch}: scripts/install-deps.sh installs qemu-user-static")
    ran, why = runs(arch)
    assert ran, why
    assert exit_program(arch)[:4] == b"\x7fELF"


def test_a_platform_nothing_can_run_fails_before_the_step_with_the_fix(tmp_path: Path) -> None:
    from pybuildkit.worker.executor import Executor
    from pybuildkit.worker.executor.runtime import ExecutorError

    executor = Executor(tmp_path / "exec", emulators=EmulatorPolicy(handler_check=lambda a: False,
                                                                    locate=lambda a: None))
    with pytest.raises(ExecutorError) as caught:
        executor._emulator("s390x", [])
    assert "linux/s390x" in caught.value.message
    assert "apt install qemu-user-static" in (caught.value.hint or "")
    assert "pybuildkit-binfmt install s390x" in (caught.value.hint or "")


ROOTLESS_PROBE = """
import json, sys
from pybuildkit.binfmt.rootless import setup_private_binfmt
from pybuildkit.binfmt.probe import status
report = setup_private_binfmt(archs=("arm64", "s390x"))
print(json.dumps({"mounted": report.mounted, "registered": report.registered,
                  "status": {s.platform: s.how for s in status()},
                  "entries": sorted(p for p in __import__("os").listdir("/proc/sys/fs/binfmt_misc"))}))
"""


def test_a_user_namespace_gets_its_own_instance_and_the_host_stays_unchanged(host_binfmt, tmp_path: Path) -> None:
    from pybuildkit.binfmt.rootless import MIN_KERNEL, kernel_version

    if kernel_version() < MIN_KERNEL:
        pytest.fail(f"kernel {kernel_version()} has no per-namespace binfmt_misc (needs 6.7)")
    before = snapshot_host_entries()
    user = "pbk-test"
    if subprocess.run(["id", user], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", user], check=True)  # also gives it a subuid range
    proc = subprocess.run(["runuser", "-u", user, "--", "unshare", "--user", "--map-root-user", "--mount",
                           sys.executable, "-c", ROOTLESS_PROBE], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["mounted"] and result["registered"] == ["arm64", "s390x"]
    assert result["entries"] == ["pybuildkit-arm64", "pybuildkit-s390x", "register", "status"]
    assert result["status"]["linux/arm64"] == "binfmt" and result["status"]["linux/s390x"] == "binfmt"
    assert snapshot_host_entries() == before


def test_debug_workers_lists_exactly_the_platforms_status_proves(builder_config: Path, tmp_path: Path) -> None:
    status = json.loads(subprocess.run([*CLI, "status", "--json"], capture_output=True, text=True, check=True).stdout)
    proven = [p["platform"] for p in status["platforms"] if p["how"] != "unavailable"]
    out = subprocess.run([sys.executable, "-m", "pybuildkit.appliance.cli.main", "--daemonless", "--root",
                          str(tmp_path / "root"), "--config", str(builder_config), "debug", "workers"],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[1].split()[1].split(",") == proven
