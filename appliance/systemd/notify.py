"""sd_notify(3) for the service: READY=1 once the daemon serves, STATUS=, WATCHDOG=1, STOPPING=1.

Uses Debian's python3-sdnotify when present; the protocol is one datagram, so a plain socket
does the same where the module is missing.
"""
from __future__ import annotations

import asyncio
import os
import socket
from typing import Any


class Notifier:
    def __init__(self, address: str, watchdog_usec: int = 0) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sd: Any = None

    @classmethod
    def from_env(cls) -> "Notifier | None":
        address = os.environ.get("NOTIFY_SOCKET", "")
        if not address:
            return None
        usec = 0
        if os.environ.get("WATCHDOG_USEC") and os.environ.get("WATCHDOG_PID", str(os.getpid())) == str(os.getpid()):
            try:
                usec = int(os.environ["WATCHDOG_USEC"])
            except ValueError:
                usec = 0
        notifier = cls(address, usec)
        notifier._connect()
        # children (runc, crun, rootlesskit) must not see it: runc would wait for READY=1 from
        # the container it starts
        for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(key, None)
        return notifier

    def _connect(self) -> None:
        try:
            import sdnotify  # Debian's python3-sdnotify; it reads NOTIFY_SOCKET itself
        except ImportError:
            return
        self._sd = sdnotify.SystemdNotifier()

    def send(self, message: str) -> None:
        if self._sd is None:
            self._send_datagram(message)
            return
        self._sd.notify(message)

    def _send_datagram(self, message: str) -> None:
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                sock.connect(target)
                sock.sendall(message.encode())
            except OSError:
                pass  # systemd gone: nothing to tell

    def ready(self, status: str = "") -> None:
        self.send("READY=1\n" + (f"STATUS={status}\n" if status else "") + f"MAINPID={os.getpid()}\n")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}\n")

    def stopping(self) -> None:
        self.send("STOPPING=1\n")

    async def watchdog_loop(self) -> None:
        """WATCHDOG=1 at half the interval systemd asked for; only while the loop is alive."""
        if not self.watchdog_usec:
            return
        interval = self.watchdog_usec / 2_000_000
        while True:
            self.send("WATCHDOG=1\n")
            await asyncio.sleep(interval)
