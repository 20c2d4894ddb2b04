"""How the client's local files, secrets, ssh agents and registry credentials reach the worker.

The worker only sees these small protocols. Daemonless builds use the direct implementations
below (reading the client's own files on the spot); the daemon will implement the same
protocols over the client's session (FileSync, Secrets, SSH, Auth) without the worker changing.
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pybuildkit.solver.errors import BuildError


@dataclass(frozen=True)
class LocalSyncRequest:
    name: str
    include_patterns: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()
    follow_paths: tuple[str, ...] = ()


class LocalDirs(Protocol):
    def sync(self, request: LocalSyncRequest, dest: Path) -> None:
        """Make `dest` mirror the client's directory `request.name`, incrementally."""


class SecretProvider(Protocol):
    """`get_secret` may be a coroutine function (a session asks the client over the network)."""

    def get_secret(self, secret_id: str) -> Any: ...


class SSHProvider(Protocol):
    def agent_socket(self, agent_id: str) -> Any: ...  # Path | None, or an awaitable of it


class CredentialProvider(Protocol):
    def credentials(self, host: str) -> Any: ...  # (user, secret) | None, or an awaitable of it


async def maybe_await(value: Any) -> Any:
    """The value of a provider call that may or may not be a coroutine."""
    return await value if inspect.isawaitable(value) else value


#: the registry credentials of the build being solved (its client's session), seen by the
#: worker's registry client in every task the build starts
build_credentials: ContextVar["CredentialProvider | None"] = ContextVar("build_credentials", default=None)


class MissingLocalError(BuildError):
    pass


@dataclass
class DirectoryLocals:
    """Daemonless: named local directories on this machine (`--local name=dir`)."""

    dirs: Mapping[str, Path]

    def sync(self, request: LocalSyncRequest, dest: Path) -> None:
        from pybuildkit.worker.fsutil.sync import sync_dir
        from pybuildkit.worker.fsutil.walk import WalkOptions

        source = self.dirs.get(request.name)
        if source is None:
            raise MissingLocalError(
                f"no local directory named {request.name!r} was given",
                hint=f"pass --local {request.name}=<dir>")
        if not source.is_dir():
            raise MissingLocalError(f"local directory {request.name}={source} does not exist")
        sync_dir(source, dest, WalkOptions(request.include_patterns, request.exclude_patterns,
                                           request.follow_paths))


@dataclass
class SecretSources:
    """Daemonless: `--secret id=x,src=file` / `env=VAR` read when a step asks."""

    files: Mapping[str, Path] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)

    def get_secret(self, secret_id: str) -> bytes | None:
        if secret_id in self.files:
            try:
                return self.files[secret_id].read_bytes()
            except OSError as exc:
                raise BuildError(f"secret {secret_id}: cannot read {self.files[secret_id]}: {exc.strerror}") from exc
        if secret_id in self.env:
            value = os.environ.get(self.env[secret_id])
            return value.encode() if value is not None else None
        return None


@dataclass
class SSHAgents:
    """Daemonless: `--ssh default` (SSH_AUTH_SOCK) or `--ssh id=/path/to/agent.sock`."""

    sockets: Mapping[str, Path] = field(default_factory=dict)

    def agent_socket(self, agent_id: str) -> Path | None:
        return self.sockets.get(agent_id or "default")


@dataclass
class Providers:
    locals: LocalDirs | None = None
    secrets: SecretProvider | None = None
    ssh: SSHProvider | None = None
    credentials: CredentialProvider | None = None
