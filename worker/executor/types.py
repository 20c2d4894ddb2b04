"""What a step asks the executor for, independent of the runtime that runs it."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class NetMode(StrEnum):
    SANDBOX = "sandbox"
    HOST = "host"
    NONE = "none"


class SecurityMode(StrEnum):
    SANDBOX = "sandbox"
    INSECURE = "insecure"


@dataclass(frozen=True)
class Mount:
    dest: str
    kind: str  # "bind" | "tmpfs" | "file" (a host file, e.g. a secret) | "socket"
    source: Path | None = None
    readonly: bool = False
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecRequest:
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    user: str
    rootfs: Path
    mounts: tuple[Mount, ...] = ()
    hostname: str = "buildkitsandbox"
    network: NetMode = NetMode.SANDBOX
    security: SecurityMode = SecurityMode.SANDBOX
    extra_hosts: tuple[tuple[str, str], ...] = ()
    ulimits: tuple[tuple[str, int, int], ...] = ()
    platform_arch: str | None = None
    readonly_rootfs: bool = False
    shm_size: int | None = None
    cgroup_parent: str | None = None


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    path: str
    version: str
    rootless: bool
    notes: tuple[str, ...] = ()
