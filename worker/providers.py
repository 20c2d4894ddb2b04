"""How the client's local files, secrets, ssh agents and registry credentials reach the worker.

The worker only sees these small protocols; the daemon implements them over the building
client's session (appliance/session: FileSync, Secrets, SSH, Auth). The direct implementations
below are what a client serves from its own machine.
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
    def sync(self, request: LocalSyncRequest, dest: Path, known: frozenset[bytes] | None = None,
             known_walk: str = "") -> Any:
        """Make `dest` mirror the client's directory `request.name`, incrementally. May return
        stats with the bytes transferred (`bytes_copied` or `bytes`) for the progress display,
        `listing_digest`, and the listing's `entries` and `walk_digest`, which the next sync
        into an untouched `dest` may be given as `known` and `known_walk`; `unchanged` says
        that the client's tree had that walk digest and `dest` was left as it was."""


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


# A client serves each `--oci-layout NAME=DIR` over its file-sync session as the directory named
# OCI_LAYOUT_DIR_PREFIX + NAME (our client's own convention; upstream buildctl serves a content
# store instead, which this daemon does not read yet).
OCI_LAYOUT_DIR_PREFIX = "oci-layout:"


class OCIStores(Protocol):
    def layout_dir(self, store_id: str) -> Path | None:
        """The client's OCI image layout named `store_id` (`--oci-layout STORE=DIR`), or None."""

    def close(self) -> None:
        """The build is over: remove whatever `layout_dir` copied."""


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
    oci_stores: OCIStores | None = None
