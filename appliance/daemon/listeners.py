"""The daemon's addresses: `unix://PATH`, `tcp://HOST:PORT` (mTLS from `[grpc.tls]`), `fd://[NAME]`.

grpc binds unix and tcp addresses itself. It cannot adopt a socket it did not create, so sockets
handed over by systemd or the rootless launcher are served by a small relay: each accepted
connection is joined, byte for byte, to grpc's private unix socket.
"""
from __future__ import annotations

import asyncio
import contextlib
import grpc
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from pybuildkit.solver.errors import ConfigError

log = logging.getLogger("pybuildkitd")


def default_address() -> str:
    if os.geteuid() == 0 and not os.environ.get("XDG_RUNTIME_DIR"):
        return "unix:///run/pybuildkit/buildkitd.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return f"unix://{runtime}/pybuildkit/buildkitd.sock"


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path
    ca: Path | None = None


@dataclass
class Binding:
    address: str
    unix_path: Path | None = None
    relay: asyncio.AbstractServer | None = None
    inherited: list[socket.socket] = field(default_factory=list)


def _unix_in_use(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def bind_unix(server: grpc.aio.Server, path: Path, *, gid: int | None = None) -> Binding:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if _unix_in_use(path):
            raise ConfigError(f"unix://{path} is already served by another process",
                              hint="stop the other daemon or pass another --addr")
        path.unlink()
    old = os.umask(0o117)
    try:
        if not server.add_insecure_port(f"unix:{path}"):
            raise ConfigError(f"cannot listen on unix://{path}")
    finally:
        os.umask(old)
    return Binding(f"unix://{path}", unix_path=path)


def finish_unix(binding: Binding, gid: int | None) -> None:
    """After start: the socket file is 0660, owned by `[grpc] gid` when configured."""
    if binding.unix_path is None:
        return
    os.chmod(binding.unix_path, 0o660)
    if gid is not None:
        os.chown(binding.unix_path, -1, gid)


def bind_tcp(server: grpc.aio.Server, hostport: str, tls: TLSFiles | None) -> Binding:
    if tls is None:
        port = server.add_insecure_port(hostport)
    else:
        try:
            key, cert = tls.key.read_bytes(), tls.cert.read_bytes()
            ca = tls.ca.read_bytes() if tls.ca else None
        except OSError as exc:
            raise ConfigError(f"[grpc.tls]: cannot read {exc.filename}: {exc.strerror}") from exc
        creds = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)
        port = server.add_secure_port(hostport, creds)
    if not port:
        raise ConfigError(f"cannot listen on tcp://{hostport}")
    return Binding(f"tcp://{hostport}")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


async def relay(sock: socket.socket, target: Path, address: str) -> Binding:
    """Serve an inherited listening socket by joining each connection to grpc's unix socket."""

    async def joined(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(str(target))
        except OSError as exc:
            log.warning("relay %s: cannot reach the server: %s", address, exc)
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()

    sock.setblocking(False)
    if sock.family == socket.AF_UNIX:
        server = await asyncio.start_unix_server(joined, sock=sock, limit=1 << 16)
    else:
        server = await asyncio.start_server(joined, sock=sock, limit=1 << 16)
    return Binding(address, relay=server, inherited=[sock])


def parse_address(address: str) -> tuple[str, str]:
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in ("unix", "tcp", "fd"):
        raise ConfigError(f"--addr {address!r}: expected unix://PATH, tcp://HOST:PORT or fd://[NAME]")
    if scheme != "fd" and not rest:
        raise ConfigError(f"--addr {address!r}: missing {'path' if scheme == 'unix' else 'host:port'}")
    return scheme, rest
