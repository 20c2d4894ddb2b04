"""The unit files are what systemd accepts (`systemd-analyze verify`), and say what the appliance
promises: socket activation for group pybuildkit, the daemon as user pybuildkit, sd_notify."""
from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UNITS = REPO / "systemd"


def _units(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".service", ".socket"))


def _load(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


@pytest.mark.parametrize("folder", [UNITS, UNITS / "user"], ids=["system", "user"])
def test_systemd_analyze_verify_is_clean(folder: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (package systemd)")
    daemon = Path(sys.executable).with_name("pybuildkitd")
    copies = []
    for unit in _units(folder):
        text = unit.read_text().replace("/usr/bin/pybuildkitd", str(daemon)).replace(
            "/usr/bin/pybuildkit-binfmt", str(daemon.with_name("pybuildkit-binfmt")))
        (tmp_path / unit.name).write_text(text)
        copies.append(str(tmp_path / unit.name))
    extra = ["--user"] if folder.name == "user" else []
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    proc = subprocess.run([analyze, "verify", *extra, *copies], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime)})
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), proc.stdout + proc.stderr


def test_the_socket_is_for_group_pybuildkit_only() -> None:
    socket = _load(UNITS / "pybuildkit.socket")["Socket"]
    assert socket["ListenStream"] == "/run/pybuildkit/buildkitd.sock"
    assert (socket["SocketUser"], socket["SocketGroup"], socket["SocketMode"]) == ("pybuildkit", "pybuildkit", "0660")


def test_the_service_runs_the_rootless_daemon_as_its_own_user_with_notify() -> None:
    service = _load(UNITS / "pybuildkit.service")["Service"]
    assert service["User"] == "pybuildkit"
    assert (service["Type"], service["NotifyAccess"], service["Delegate"]) == ("notify", "all", "yes")
    assert service["ExecStart"].startswith("/usr/bin/pybuildkitd --rootless ")
    assert service["StateDirectory"] == "pybuildkit" and service["WatchdogSec"]
    # newuidmap is setuid: rootlesskit needs it, so nothing may imply NoNewPrivileges
    implying = {"NoNewPrivileges", "ProtectClock", "ProtectHostname", "LockPersonality", "RestrictRealtime",
                "SystemCallFilter", "SystemCallArchitectures", "RestrictNamespaces", "MemoryDenyWriteExecute",
                "ProtectKernelModules", "ProtectKernelTunables", "PrivateDevices", "RestrictAddressFamilies"}
    assert not implying & set(service)


def test_sysusers_and_tmpfiles_create_the_user_and_its_state() -> None:
    assert "u pybuildkit " in (UNITS / "pybuildkit.sysusers").read_text()
    assert "d /var/lib/pybuildkit 0750 pybuildkit pybuildkit" in (UNITS / "pybuildkit.tmpfiles").read_text()
