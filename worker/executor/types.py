"""What a step asks the executor for, independent of the runtime that runs it."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class NetMode(StrEnum):
    """LLB's network modes. SANDBOX is BuildKit's default; without CNI it means the network of
    the namespace the daemon runs in (the host as root, rootlesskit's when rootless), exactly
    like buildkitd's `auto` network mode falling back to `host`."""

    SANDBOX = "sandbox"
    HOST = "host"
    NONE = "none"


class SecurityMode(StrEnum):
    SANDBOX = "sandbox"
    INSECURE = "insecure"


class MountKind(StrEnum):
    BIND = "bind"
    TMPFS = "tmpfs"
    FILE = "file"  # one host file (a secret) bound over a file path
    SOCKET = "socket"  # a unix socket (ssh agent proxy) bound over a path


@dataclass(frozen=True)
class Mount:
    dest: str
    kind: str  # a MountKind value: "bind" | "tmpfs" | "file" | "socket"
    source: Path | None = None
    readonly: bool = False
    options: tuple[str, ...] = ()  # tmpfs: "size=...", "mode=..."


@dataclass(frozen=True)
class ExecRequest:
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: str  # "name", "uid", "name:group", "uid:gid", resolved against rootfs
    rootfs: Path  # a prepared, writable directory
    mounts: tuple[Mount, ...] = ()
    hostname: str = "buildkitsandbox"
    network: NetMode = NetMode.SANDBOX
    security: SecurityMode = SecurityMode.SANDBOX
    extra_hosts: tuple[tuple[str, str], ...] = ()  # (host, ip)
    ulimits: tuple[tuple[str, int, int], ...] = ()  # (name, soft, hard)
    platform_arch: str | None = None  # GOARCH name, for the emulator decision
    readonly_rootfs: bool = False
    shm_size: int | None = None  # bytes
    cgroup_parent: str | None = None


@dataclass(frozen=True)
class RuntimeInfo:
    name: str  # "crun" | "runc"
    path: str
    version: str
    rootless: bool
    notes: tuple[str, ...] = ()
