"""Handing listening sockets to the daemon inside rootlesskit (Debian 12's rootlesskit 1.1 does not
pass LISTEN_FDS on): the launcher listens on a private unix socket, the daemon connects once and
receives the sockets with their names over SCM_RIGHTS."""
from __future__ import annotations

import json
import socket
import time

MAX_SOCKETS = 16


def serve_listeners(path: str, listeners: list[tuple[str, socket.socket]], *, timeout: float = 60) -> None:
    """Wait for the daemon to connect to `path` and hand it `listeners` (the launcher's side)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        server.listen(1)
        server.settimeout(timeout)
        conn, _ = server.accept()
        with conn:
            send_listeners(conn, listeners)
    finally:
        server.close()


def send_listeners(conn: socket.socket, listeners: list[tuple[str, socket.socket]]) -> None:
    names = json.dumps([name for name, _ in listeners]).encode()
    socket.send_fds(conn, [names], [sock.fileno() for _, sock in listeners])


def receive_listeners(path: str, timeout: float = 60) -> list[tuple[str, socket.socket]]:
    """Connect to the launcher at `path` and take the sockets it hands over (the daemon's side)."""
    deadline = time.monotonic() + timeout
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    with conn:
        data, fds, _flags, _addr = socket.recv_fds(conn, 65536, MAX_SOCKETS)
    names = json.loads(data.decode() or "[]")
    return [(names[i] if i < len(names) else "unknown", socket.socket(fileno=fd)) for i, fd in enumerate(fds)]
