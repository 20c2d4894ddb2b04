"""Dialing a daemon: `unix://PATH`, `tcp://HOST:PORT` (TLS with buildctl's flags)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pybuildkit.solver.errors import BuildError

if TYPE_CHECKING:  # imported by channel(): the flags and the default address need no grpc
    import grpc

MAX_MESSAGE = 64 << 20


def default_address() -> str:
    """buildctl's rule: BUILDKIT_HOST, else the system socket for root, else the user's."""
    env = os.environ.get("BUILDKIT_HOST")
    if env:
        return env
    if os.geteuid() == 0:
        return "unix:///run/pybuildkit/buildkitd.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return f"unix://{runtime}/pybuildkit/buildkitd.sock"


@dataclass(frozen=True)
class TLSOptions:
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.ca or self.cert or self.key)


def _read(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BuildError(f"{flag} {path}: {exc.strerror}") from exc


def channel(address: str, tls: TLSOptions = TLSOptions()) -> grpc.aio.Channel:
    import grpc

    options: list[tuple[str, str | int]] = [("grpc.max_receive_message_length", MAX_MESSAGE),
                                            ("grpc.max_send_message_length", MAX_MESSAGE)]
    scheme, sep, rest = address.partition("://")
    if not sep or not rest:
        raise BuildError(f"--addr {address!r}: expected unix://PATH or tcp://HOST:PORT")
    if scheme == "unix":
        options.append(("grpc.default_authority", "localhost"))
        return grpc.aio.insecure_channel(f"unix:{rest}", options=options)
    if scheme != "tcp":
        raise BuildError(f"--addr {address!r}: unsupported scheme {scheme!r}", hint="use unix:// or tcp://")
    if not tls.enabled:
        return grpc.aio.insecure_channel(rest, options=options)
    if bool(tls.cert) != bool(tls.key):
        raise BuildError("--tlscert and --tlskey go together")
    creds = grpc.ssl_channel_credentials(root_certificates=_read(tls.ca, "--tlscacert"),
                                         private_key=_read(tls.key, "--tlskey"),
                                         certificate_chain=_read(tls.cert, "--tlscert"))
    if tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.aio.secure_channel(rest, creds, options=options)


def unreachable(address: str, exc: grpc.aio.AioRpcError) -> BuildError:
    return BuildError(f"cannot reach the daemon at {address}: {exc.details() or exc.code().name}",
                      hint="start pybuildkitd (or `systemctl start pybuildkit.socket`), pass --addr, "
                           "or use --daemonless")
