"""Sockets passed by systemd socket activation (sd_listen_fds(3): LISTEN_FDS, LISTEN_PID,
LISTEN_FDNAMES), adopted once and removed from the environment so children do not see them."""
from __future__ import annotations

import os
import socket

SD_LISTEN_FDS_START = 3


def listen_fds(*, unset_environment: bool = True) -> list[tuple[str, socket.socket]]:
    try:
        pid = int(os.environ.get("LISTEN_PID", "0"))
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    names = os.environ.get("LISTEN_FDNAMES", "").split(":") if os.environ.get("LISTEN_FDNAMES") else []
    if unset_environment:
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(key, None)
    if pid != os.getpid() or count <= 0:
        return []
    out = []
    for index in range(count):
        fd = SD_LISTEN_FDS_START + index
        os.set_inheritable(fd, False)
        sock = socket.socket(fileno=fd)
        name = names[index] if index < len(names) and names[index] else "unknown"
        out.append((name, sock))
    return out
