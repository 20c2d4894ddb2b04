"""How the daemon gets a delegated cgroup for its steps: use its own when systemd delegated it,
ask the right systemd manager otherwise, and say in one line why there is none."""
from __future__ import annotations

from pathlib import Path

from pybuildkit.appliance.systemd.cgroup import (
    Decision,
    Delegation,
    Facts,
    Manager,
    Step,
    Unavailable,
    _bus_address,
    _socket_of,
    decide,
    launcher_argument,
    own_cgroup,
    unified_mount,
)

UNIFIED = """\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 24 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate
"""
HYBRID = """\
25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,name=systemd
28 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,memory
"""
LEGACY = "28 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:11 - cgroup cgroup rw,memory\n"


def facts(**overrides: object) -> Facts:
    values: dict[str, object] = {"mount": Path("/sys/fs/cgroup"), "path": "/system.slice/pybuildkit.service",
                                 "delegated": False, "host_root": False, "in_user_namespace": False,
                                 "bus_allowed": True}
    values.update(overrides)
    return Facts(**values)  # type: ignore[arg-type]


def test_the_v2_hierarchy_is_found_on_unified_and_hybrid_hosts_only() -> None:
    assert unified_mount(UNIFIED) == Path("/sys/fs/cgroup")
    assert unified_mount(HYBRID) == Path("/sys/fs/cgroup/unified")
    assert unified_mount(LEGACY) is None


def test_the_own_cgroup_is_the_v2_line_of_proc_self_cgroup() -> None:
    assert own_cgroup("1:name=systemd:/system.slice/x.service\n0::/system.slice/x.service\n") == \
        "/system.slice/x.service"
    assert own_cgroup("0::/\n") == "/"
    assert own_cgroup("4:memory:/a\n") is None


def test_a_delegated_unit_uses_its_own_cgroup_without_dbus() -> None:
    assert decide(facts(delegated=True)) == Decision(Step.USE_OWN)
    assert decide(facts(delegated=True, bus_allowed=False)) == Decision(Step.USE_OWN)


def test_an_unprivileged_daemon_asks_the_user_manager() -> None:
    assert decide(facts(path="/user.slice/user-1000.slice/session-2.scope")) == \
        Decision(Step.ASK_MANAGER, Manager.USER)


def test_root_asks_the_system_manager() -> None:
    assert decide(facts(path="/", host_root=True)) == Decision(Step.ASK_MANAGER, Manager.SYSTEM)


def test_inside_rootlesskit_the_bus_is_not_asked() -> None:
    decision = decide(facts(delegated=False, bus_allowed=False, in_user_namespace=True))
    assert decision.step == Step.NONE
    assert "/system.slice/pybuildkit.service is not delegated" in decision.reason


def test_a_host_without_cgroup_v2_has_none_and_says_why() -> None:
    decision = decide(facts(mount=None))
    assert decision.step == Step.NONE and "no cgroup v2" in decision.reason


def test_the_log_lines_name_the_cgroup_or_the_reason() -> None:
    found = Delegation("/system.slice/pybuildkit.service", Path("/sys/fs/cgroup"), "the daemon's own cgroup",
                       ("cpu", "memory", "pids"))
    assert found.summary() == ("cgroup: build steps run under the delegated cgroup "
                               "/system.slice/pybuildkit.service/buildkit (the daemon's own cgroup; "
                               "controllers: cpu memory pids)")
    assert found.directory == Path("/sys/fs/cgroup/system.slice/pybuildkit.service")
    assert found.steps_parent == "/system.slice/pybuildkit.service"
    assert Unavailable("no D-Bus").summary() == \
        "cgroup: no delegated cgroup (no D-Bus); build steps run in the daemon's own cgroup"


def test_the_launcher_tells_the_daemon_what_it_found() -> None:
    assert launcher_argument(Unavailable("no bus: x")) == "none:no bus: x"
    assert launcher_argument(Delegation("/a.scope", Path("/sys/fs/cgroup"), "transient scope a.scope")) == \
        "delegated:transient scope a.scope"


def test_the_user_manager_is_reached_on_the_users_runtime_directory(monkeypatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    assert _bus_address(Manager.USER) == "unix:path=/run/user/1234/bus"
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    assert _socket_of(_bus_address(Manager.SYSTEM)) == "/run/dbus/system_bus_socket"
    assert _socket_of("unix:abstract=/tmp/dbus-x,guid=1") is None
