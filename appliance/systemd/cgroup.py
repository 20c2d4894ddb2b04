"""A delegated cgroup for the build steps, found or asked for the way rootless container engines do.

A daemon whose unit has `Delegate=yes` owns its cgroup: it moves its own processes into a leaf
(`daemon/`, so cgroup v2's "no internal processes" rule lets it enable controllers) and lets the
runtime create one cgroup per step under `buildkit/`. A daemon without one asks the systemd
manager (the user manager for an unprivileged daemon, the system manager for root) over D-Bus for
a transient scope with `Delegate=yes` holding its own pid, waits for that job, and then does the
same in the scope. Where there is no cgroup v2, no systemd or no bus, the daemon runs the steps
in its own cgroup and says so in one log line.

Inside rootlesskit's user namespace D-Bus refuses us (the EXTERNAL credentials say uid 0, the
socket says the user's uid), so the launcher asks for the scope before it starts rootlesskit and
tells the daemon inside what it got.
"""
from __future__ import annotations

import asyncio
import errno
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

#: the leaf that holds the daemon's own processes, and the parent of the steps' cgroups (the
#: runtime places a step at <delegated>/buildkit/<container id>, see worker/executor/spec.py)
DAEMON_LEAF = "daemon"
STEPS = "buildkit"
CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")
DBUS_TIMEOUT = 10.0
SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER_IFACE = "org.freedesktop.systemd1.Manager"


class Manager(StrEnum):
    USER = "user manager"
    SYSTEM = "system manager"


@dataclass(frozen=True)
class Delegation:
    """A cgroup v2 subtree that is ours: `path` as in /proc/self/cgroup, under `mount`."""

    path: str
    mount: Path
    source: str  # how we got it, for the log line
    controllers: tuple[str, ...] = ()

    @property
    def directory(self) -> Path:
        return self.mount / self.path.lstrip("/")

    @property
    def steps_parent(self) -> str:
        """The cgroup parent handed to the executor (cgroupsPath is relative to the hierarchy)."""
        return self.path

    def summary(self) -> str:
        controllers = " ".join(self.controllers) or "none"
        return (f"cgroup: build steps run under the delegated cgroup {self.path.rstrip('/')}/{STEPS} "
                f"({self.source}; controllers: {controllers})")


@dataclass(frozen=True)
class Unavailable:
    reason: str

    def summary(self) -> str:
        return f"cgroup: no delegated cgroup ({self.reason}); build steps run in the daemon's own cgroup"


Outcome = Delegation | Unavailable


# -- facts about this process --------------------------------------------------------------

def unified_mount(mountinfo: str) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on a unified host,
    /sys/fs/cgroup/unified on a hybrid one (whose v2 tree has no controllers), else None."""
    found: list[str] = []
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields = before.split()
        if len(fields) >= 5 and after.split()[:1] == ["cgroup2"]:
            found.append(fields[4])
    for preferred in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if preferred in found:
            return Path(preferred)
    return Path(found[0]) if found else None


def own_cgroup(proc_cgroup: str) -> str | None:
    """Our path in the v2 hierarchy (the `0::` line of /proc/self/cgroup)."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return None


def _delegate_xattr(directory: Path) -> bool:
    """systemd ≥ 251 marks delegated cgroups (trusted.* is readable by root only, user.* by all)."""
    for name in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(directory, name).strip(b"\0\n") == b"1":
                return True
        except OSError:
            continue
    return False


def _owned(path: Path, uid: int) -> bool:
    try:
        return path.stat().st_uid == uid
    except OSError:
        return False


def is_delegated(directory: Path, *, uid: int, host_root: bool, known_scope: bool = False) -> bool:
    """A cgroup systemd delegated to us. Root owns every cgroup, so only systemd's mark counts
    for root; for anyone else the delegation is also visible as ownership that starts exactly
    here (systemd chowns a User= service's cgroup and its delegation files, never the parent),
    which is also how it looks from inside a user namespace. In the user manager's tree the
    user owns everything, so ownership proves only a scope we asked for (`known_scope`)."""
    if not directory.is_dir():
        return False
    if _delegate_xattr(directory):
        return True
    if host_root:
        return False
    mine = all(_owned(p, uid) for p in (directory, directory / "cgroup.procs", directory / "cgroup.subtree_control"))
    return mine and (known_scope or not _owned(directory.parent, uid))


@dataclass(frozen=True)
class Facts:
    """What decides the way to a delegated cgroup; gathered by `gather()`, decided by `decide()`."""

    mount: Path | None  # the cgroup v2 hierarchy
    path: str | None  # our cgroup in it
    delegated: bool  # our cgroup (or, when we sit in our own leaf, its parent) is delegated to us
    host_root: bool  # euid 0 outside any user namespace
    in_user_namespace: bool
    bus_allowed: bool  # False inside rootlesskit: the launcher asked the manager already


class Step(StrEnum):
    USE_OWN = "use own"
    ASK_MANAGER = "ask manager"
    NONE = "none"


@dataclass(frozen=True)
class Decision:
    step: Step
    manager: Manager | None = None
    reason: str = ""


def decide(facts: Facts) -> Decision:
    if facts.mount is None or facts.path is None:
        return Decision(Step.NONE, reason="this host has no cgroup v2 hierarchy")
    if facts.delegated:
        return Decision(Step.USE_OWN)
    if not facts.bus_allowed:
        return Decision(Step.NONE, reason=f"the daemon's cgroup {facts.path} is not delegated to it")
    return Decision(Step.ASK_MANAGER, Manager.SYSTEM if facts.host_root else Manager.USER)


def _uid_map_is_identity() -> bool:
    try:
        return Path("/proc/self/uid_map").read_text().split()[:3] == ["0", "0", "4294967295"]
    except OSError:
        return True


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _with_leaf(mount: Path, path: str, uid: int, host_root: bool, known_scope: bool) -> tuple[str, bool]:
    """Our delegated cgroup, also when this process already sits in the leaf of a delegated one
    (a daemon restarted in the same scope)."""
    directory = mount / path.lstrip("/")
    if is_delegated(directory, uid=uid, host_root=host_root, known_scope=known_scope):
        return path, True
    if os.path.basename(path) == DAEMON_LEAF and (directory.parent / STEPS).is_dir():
        parent = os.path.dirname(path) or "/"
        if is_delegated(directory.parent, uid=uid, host_root=host_root, known_scope=known_scope):
            return parent, True
    return path, False


def gather(*, bus_allowed: bool, known_scope: bool = False) -> Facts:
    mount = unified_mount(_read("/proc/self/mountinfo"))
    path = own_cgroup(_read("/proc/self/cgroup"))
    userns = not _uid_map_is_identity()
    host_root = os.geteuid() == 0 and not userns
    delegated = False
    if mount is not None and path is not None:
        path, delegated = _with_leaf(mount, path, os.geteuid(), host_root, known_scope)
    return Facts(mount, path, delegated, host_root, userns, bus_allowed)


# -- making it usable ----------------------------------------------------------------------

def prepare(directory: Path, *, attempts: int = 20) -> tuple[str, ...]:
    """Move every process of `directory` into its `daemon` leaf, create `buildkit` for the
    steps, enable the controllers we are given in both, and remove step cgroups a killed
    predecessor left empty. Returns the controllers the steps can use."""
    leaf, steps = directory / DAEMON_LEAF, directory / STEPS
    for sub in (leaf, steps):
        sub.mkdir(exist_ok=True)
    for _ in range(attempts):  # processes may fork while we move them
        pids = _read(str(directory / "cgroup.procs")).split()
        if not pids:
            break
        for pid in pids:
            try:
                (leaf / "cgroup.procs").write_text(pid)
            except OSError as exc:
                if exc.errno not in (errno.ESRCH, errno.EINVAL):  # gone, or a zombie/kernel thread
                    raise
    available = set(_read(str(directory / "cgroup.controllers")).split())
    enabled: list[str] = []
    for name in CONTROLLERS:
        if name in available and _enable(directory, name) and _enable(steps, name):
            enabled.append(name)
    for stale in steps.iterdir():
        if stale.is_dir():
            try:
                stale.rmdir()
            except OSError:
                pass  # still has processes: the executor's recovery kills the container
    return tuple(enabled)


def _enable(directory: Path, controller: str) -> bool:
    try:
        (directory / "cgroup.subtree_control").write_text(f"+{controller}")
        return True
    except OSError:
        return False


# -- asking systemd for a scope ------------------------------------------------------------

class ScopeError(Exception):
    """The manager could not be reached or refused the scope; the message is the reason."""


def _bus_address(manager: Manager) -> str:
    if manager == Manager.SYSTEM:
        return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket")
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return os.environ["DBUS_SESSION_BUS_ADDRESS"]
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return f"unix:path={runtime_dir}/bus"


def _socket_of(address: str) -> str | None:
    for part in address.split(";")[0].partition(":")[2].split(","):
        key, _, value = part.partition("=")
        if key == "path":
            return value
    return None


async def start_scope(manager: Manager, pid: int, name: str) -> None:
    """StartTransientUnit(name, "fail", PIDs=[pid], Delegate=yes), then wait for its job."""
    address = _bus_address(manager)
    sock = _socket_of(address)
    if sock is not None and not os.path.exists(sock):  # before the import: dbus-next loads GLib, ~0.1 s
        raise ScopeError(f"no D-Bus socket for the {manager} at {sock}")
    try:
        from dbus_next import BusType, Message, MessageType, Variant
        from dbus_next.aio import MessageBus
    except ImportError as exc:
        raise ScopeError("python3-dbus-next is not installed") from exc
    try:
        bus = await MessageBus(bus_address=address,
                               bus_type=BusType.SYSTEM if manager == Manager.SYSTEM else BusType.SESSION).connect()
    except Exception as exc:  # dbus-next raises plain exceptions of several kinds
        raise ScopeError(f"cannot connect to the {manager} over D-Bus ({address}): {exc}") from exc
    removed: dict[str, str] = {}
    changed = asyncio.Event()

    def on_message(message: Message) -> None:
        if (message.message_type == MessageType.SIGNAL and message.interface == MANAGER_IFACE
                and message.member == "JobRemoved"):
            removed[message.body[1]] = message.body[3]
            changed.set()

    async def call(member: str, signature: str = "", body: list | None = None, *,
                   destination: str = SYSTEMD, path: str = MANAGER_PATH, interface: str = MANAGER_IFACE) -> list:
        reply = await bus.call(Message(destination=destination, path=path, interface=interface, member=member,
                                       signature=signature, body=body or []))
        if reply is None or reply.message_type == MessageType.ERROR:
            detail = (reply.body[0] if reply is not None and reply.body else "") if reply else "no reply"
            raise ScopeError(f"{member} failed on the {manager}: {reply.error_name if reply else ''} {detail}".strip())
        return list(reply.body)

    bus.add_message_handler(on_message)
    try:
        await call("AddMatch", "s", [f"type='signal',sender='{SYSTEMD}',interface='{MANAGER_IFACE}',"
                                     "member='JobRemoved'"],
                   destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus")
        await call("Subscribe")
        properties = [["PIDs", Variant("au", [pid])], ["Delegate", Variant("b", True)],
                      ["Description", Variant("s", "pybuildkit build daemon")],
                      ["CollectMode", Variant("s", "inactive-or-failed")]]
        job = (await call("StartTransientUnit", "ssa(sv)a(sa(sv))", [name, "fail", properties, []]))[0]
        while job not in removed:
            changed.clear()
            await changed.wait()
        if removed[job] != "done":
            raise ScopeError(f"the {manager}'s job for {name} ended with {removed[job]!r}")
    finally:
        bus.disconnect()


async def _ask(manager: Manager, pid: int) -> Outcome:
    name = f"pybuildkitd-{pid}.scope"
    try:
        await asyncio.wait_for(start_scope(manager, pid, name), DBUS_TIMEOUT)
    except ScopeError as exc:
        return Unavailable(str(exc))
    except asyncio.TimeoutError:
        return Unavailable(f"the {manager} did not start {name} within {DBUS_TIMEOUT:.0f} s")
    facts = gather(bus_allowed=False, known_scope=True)
    if not facts.delegated or facts.mount is None or facts.path is None:
        return Unavailable(f"the {manager} started {name}, but {facts.path} is not delegated to us")
    return Delegation(facts.path, facts.mount, f"transient scope {name} from the systemd {manager}")


async def find_or_request(*, bus_allowed: bool = True) -> Outcome:
    """The delegated cgroup this process is in, after asking systemd for one if needed; nothing
    is moved or created (`setup` does that, in the daemon)."""
    facts = gather(bus_allowed=bus_allowed)
    decision = decide(facts)
    if decision.step == Step.NONE:
        return Unavailable(decision.reason)
    if decision.step == Step.ASK_MANAGER:
        assert decision.manager is not None
        return await _ask(decision.manager, os.getpid())
    assert facts.mount is not None and facts.path is not None
    return Delegation(facts.path, facts.mount, "the daemon's own cgroup, Delegate=yes")


async def setup(*, bus_allowed: bool = True, launcher: str = "") -> Outcome:
    """Find or request the delegated cgroup and make it usable; never raises for a host that
    cannot give one (the caller logs `summary()`, once). `launcher` is what the rootless
    launcher found before it entered the user namespace (`launcher_argument`)."""
    if launcher:
        kind, _, text = launcher.partition(":")
        if kind == "none":
            return Unavailable(text)
        facts = gather(bus_allowed=False, known_scope=True)
        if not facts.delegated or facts.mount is None or facts.path is None:
            return Unavailable(f"the launcher's cgroup {facts.path} is not delegated to the daemon")
        outcome: Outcome = Delegation(facts.path, facts.mount, text)
    else:
        outcome = await find_or_request(bus_allowed=bus_allowed)
    if isinstance(outcome, Unavailable):
        return outcome
    try:
        controllers = await asyncio.to_thread(prepare, outcome.directory)
    except OSError as exc:
        return Unavailable(f"cannot use the delegated cgroup {outcome.path}: {exc.strerror or exc}")
    return Delegation(outcome.path, outcome.mount, outcome.source, controllers)


def launcher_argument(outcome: Outcome) -> str:
    """What the launcher passes to the daemon inside rootlesskit (`--cgroup-from-launcher`)."""
    if isinstance(outcome, Unavailable):
        return f"none:{outcome.reason}"
    return f"delegated:{outcome.source}"
