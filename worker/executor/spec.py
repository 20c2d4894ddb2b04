"""The OCI runtime spec (config.json) for one build step, close to what BuildKit generates.

Sandbox steps get containerd's default capabilities and masked paths; insecure steps get every
capability the kernel knows, host devices, writable /sys and no masked paths. No user namespace
is created: rootless, the executor already runs as mapped root inside rootlesskit's.
"""
from __future__ import annotations

import os
import posixpath
import resource
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.executor import mounts as m
from pybuildkit.worker.executor.network import (
    creates_network_namespace,
    network_namespaces,
)
from pybuildkit.worker.executor.types import ExecRequest, SecurityMode
from pybuildkit.worker.userdb import ResolvedUser

DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
# Indexed by capability number (linux/capability.h).
CAPS_BY_NUMBER = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
)
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/sys/devices/virtual/powercap", "/proc/scsi")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
DEFAULT_NOFILE = 1048576
_RLIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                 "rss", "rtprio", "rttime", "sigpending", "stack", "as")


def _bounding_set() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return (1 << len(CAPS_BY_NUMBER)) - 1


def all_caps() -> tuple[str, ...]:
    """Every capability we can hand on: known to this kernel and in our own bounding set (a
    runtime fails with `capset: Operation not permitted` when asked for more)."""
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = len(CAPS_BY_NUMBER) - 1
    bounding = _bounding_set()
    return tuple(f"CAP_{name}" for number, name in enumerate(CAPS_BY_NUMBER[:last + 1]) if bounding >> number & 1)


def default_caps() -> tuple[str, ...]:
    grantable = set(all_caps())
    return tuple(cap for cap in DEFAULT_CAPS if cap in grantable)


@dataclass(frozen=True)
class SpecContext:
    """What the spec needs besides the request: decided by the executor, not by the step."""

    user: ResolvedUser
    hosts_file: Path
    resolv_file: Path
    rootless: bool
    emulator: Path | None = None
    cgroups_path: str | None = None
    cgroups: bool = False  # the runtime manages cgroups: mount /sys/fs/cgroup, apply device rules


def rlimits(ulimits: tuple[tuple[str, int, int], ...]) -> list[dict[str, Any]]:
    """RLIMIT_NOFILE defaults to 1048576 (capped by what we may grant); a step's ulimits win."""
    hard_cap = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = DEFAULT_NOFILE if hard_cap == resource.RLIM_INFINITY else min(DEFAULT_NOFILE, hard_cap)
    limits = {"RLIMIT_NOFILE": (nofile, nofile)}
    for name, soft, hard in ulimits:
        if name.lower() not in _RLIMIT_NAMES:
            raise BuildError(f"invalid ulimit name {name!r}",
                             hint="use one of " + ", ".join(sorted(_RLIMIT_NAMES)))
        limits[f"RLIMIT_{name.upper()}"] = (soft, hard)
    return [{"type": kind, "soft": soft, "hard": hard} for kind, (soft, hard) in limits.items()]


def process_env(env: tuple[str, ...], home: str) -> list[str]:
    """The step's environment, with HOME from the user's passwd entry when not set (BuildKit)."""
    result = list(env)
    if not any(e.startswith("HOME=") for e in result):
        result.append(f"HOME={home or '/'}")
    return result


def host_devices() -> list[dict[str, Any]]:
    """Every device node under the host's /dev, for insecure steps (like `--privileged`)."""
    found: list[dict[str, Any]] = []
    skip = {"/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console"}
    for dirpath, dirnames, filenames in os.walk("/dev"):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if path in skip:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append({"path": path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                              "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                              "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})
    return found


def build_spec(req: ExecRequest, ctx: SpecContext) -> dict[str, Any]:
    insecure = req.security == SecurityMode.INSECURE
    own_netns = creates_network_namespace(req.network)
    caps = list(all_caps() if insecure else default_caps())
    args = list(req.args)
    if not args:
        raise BuildError("a step needs a command to run (empty args)")
    if ctx.emulator is not None:
        args = [m.EMULATOR_PATH, *args]

    mounts = m.system_mounts(rootless=ctx.rootless, own_netns=own_netns, insecure=insecure,
                             cgroupfs=ctx.cgroups, shm_size=req.shm_size)
    mounts.append(m.ro_bind(ctx.resolv_file, "/etc/resolv.conf"))
    mounts.append(m.ro_bind(ctx.hosts_file, "/etc/hosts"))
    mounts.extend(m.request_mount(mount) for mount in req.mounts)
    if ctx.emulator is not None:
        mounts.append(m.emulator_mount(ctx.emulator))

    user: dict[str, Any] = {"uid": ctx.user.uid, "gid": ctx.user.gid}
    if ctx.user.additional_gids:
        user["additionalGids"] = list(ctx.user.additional_gids)
    linux: dict[str, Any] = {
        "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")] + network_namespaces(req.network),
    }
    if not insecure:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    elif not ctx.rootless:
        linux["devices"] = host_devices()
    if ctx.cgroups_path:
        linux["cgroupsPath"] = ctx.cgroups_path
    if ctx.cgroups and insecure:
        linux["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": user,
            "args": args,
            "env": process_env(req.env, ctx.user.home),
            "cwd": posixpath.normpath(posixpath.join("/", req.cwd or "/")),
            "capabilities": {kind: caps for kind in ("bounding", "effective", "permitted")},
            "rlimits": rlimits(req.ulimits),
            "noNewPrivileges": False,
        },
        "root": {"path": str(req.rootfs), "readonly": req.readonly_rootfs},
        "hostname": req.hostname or "buildkitsandbox",
        "mounts": m.dedup(mounts),
        "linux": linux,
    }


def cgroups_path(parent: str | None, container_id: str) -> str | None:
    """BuildKit's placement under a requested parent: `<slice>:` + id for systemd slices, else
    /<parent>/buildkit/<id>."""
    if not parent:
        return None
    if ".slice" in parent and parent.endswith(":"):
        return parent + container_id
    return posixpath.join("/", parent.strip("/"), "buildkit", container_id)
