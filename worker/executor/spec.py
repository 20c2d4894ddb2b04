"""OCI runtime spec for one build step, close to what BuildKit's executor generates."""
from __future__ import annotations

import resource
from pathlib import Path

from pybuildkit.worker.executor.types import ExecRequest, NetMode, SecurityMode
from pybuildkit.worker.userdb import resolve_user

DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
ALL_CAPS = DEFAULT_CAPS + [
    "CAP_DAC_READ_SEARCH", "CAP_LINUX_IMMUTABLE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_LEASE",
    "CAP_AUDIT_CONTROL", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
MASKED_PATHS = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/sys/devices/virtual/powercap", "/proc/scsi"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_RLIMITS = {"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
            "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
            "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
            "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
            "stack": "RLIMIT_STACK"}
EMULATOR_PATH = "/dev/.buildkit_qemu_emulator"


def build_spec(req: ExecRequest, *, hosts_file: Path, resolv_file: Path, rootless: bool,
               emulator: Path | None = None) -> dict:
    user = resolve_user(req.rootfs, req.user)
    env = list(req.env)
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home}")
    args = list(req.args)
    if emulator is not None:
        args = [EMULATOR_PATH] + args
    insecure = req.security == SecurityMode.INSECURE
    caps = ALL_CAPS if insecure else DEFAULT_CAPS
    nofile = min(1048576, resource.getrlimit(resource.RLIMIT_NOFILE)[1])  # raising it is not ours to do
    rlimits = [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}]
    for name, soft, hard in req.ulimits:
        kind = _RLIMITS.get(name.lower())
        if kind:
            rlimits = [r for r in rlimits if r["type"] != kind] + [{"type": kind, "hard": hard, "soft": soft}]
    namespaces = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    # the default network is the daemon's own (BuildKit's OCI worker without CNI; in rootless
    # mode that is rootlesskit's namespace, outbound through slirp4netns); `none` gets a fresh
    # namespace in which the runtime brings up only `lo`
    new_netns = req.network == NetMode.NONE
    if new_netns:
        namespaces.append({"type": "network"})
    mounts: list[dict] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
         + ([] if rootless else ["gid=5"])},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={req.shm_size or 65536 * 1024}"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    ]
    if new_netns and not rootless:
        mounts.append({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                       "options": ["nosuid", "noexec", "nodev", "ro"]})
    else:
        mounts.append({"destination": "/sys", "type": "none", "source": "/sys",
                       "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    mounts.append({"destination": "/etc/hosts", "type": "bind", "source": str(hosts_file), "options": ["rbind", "ro"]})
    mounts.append({"destination": "/etc/resolv.conf", "type": "bind", "source": str(resolv_file),
                   "options": ["rbind", "ro"]})
    for m in req.mounts:
        if m.kind == "tmpfs":
            mounts.append({"destination": m.dest, "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=1777", *m.options]})
        else:
            options = ["rbind", "ro" if m.readonly else "rw"]
            mounts.append({"destination": m.dest, "type": "bind", "source": str(m.source), "options": options})
    if emulator is not None:
        mounts.append({"destination": EMULATOR_PATH, "type": "bind", "source": str(emulator),
                       "options": ["rbind", "ro"]})
    linux: dict = {"namespaces": namespaces}
    if not insecure:
        linux["maskedPaths"] = MASKED_PATHS
        linux["readonlyPaths"] = READONLY_PATHS
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": user.uid, "gid": user.gid,
                     **({"additionalGids": list(user.additional_gids)} if user.additional_gids else {})},
            "args": args,
            "env": env,
            "cwd": req.cwd or "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": rlimits,
            "noNewPrivileges": False,
        },
        "root": {"path": str(req.rootfs), "readonly": req.readonly_rootfs},
        "hostname": req.hostname,
        "mounts": mounts,
        "linux": linux,
    }


def hosts_content(hostname: str, extra: tuple[tuple[str, str], ...]) -> str:
    lines = [f"127.0.0.1\tlocalhost {hostname}", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{ip}\t{host}" for host, ip in extra]
    return "\n".join(lines) + "\n"


def resolv_content(network: NetMode) -> str:
    """The host's resolv.conf; in a fresh network namespace loopback resolvers cannot work."""
    try:
        text = Path("/etc/resolv.conf").read_text()
    except OSError:
        text = ""
    if network != NetMode.NONE:
        return text
    kept = [line for line in text.splitlines()
            if not (line.startswith("nameserver") and (" 127." in line or " ::1" in line))]
    if not any(line.startswith("nameserver") for line in kept):
        kept += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    return "\n".join(kept) + "\n"

