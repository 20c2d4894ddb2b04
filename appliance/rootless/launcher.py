"""`pybuildkitd --rootless`: the daemon in rootlesskit's user namespace, as an unprivileged user.

The launcher keeps the listening sockets (from systemd, or its own at the default address),
starts `rootlesskit ... pybuildkitd --rootless-child`, hands the sockets to the daemon inside over
SCM_RIGHTS, forwards SIGTERM and exits with the daemon. Nothing here runs as root.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from pybuildkit.appliance.rootless.fdpass import serve_listeners
from pybuildkit.appliance.systemd.listenfds import listen_fds

PROG = "pybuildkitd --rootless"
NETWORKS = ("slirp4netns", "host")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, add_help=True)
    p.add_argument("--rootless", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--addr", action="append", default=[], help="listening address when not socket-activated")
    p.add_argument("--root", type=Path, help="state directory (default ~/.local/share/pybuildkit)")
    p.add_argument("--config", type=Path, help="pybuildkitd.toml")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--rootless-net", choices=NETWORKS,
                   help="network of the namespace: slirp4netns (isolated; the default) or host "
                        "(default from [rootless] network in the config)")
    return p


def _own_listeners(addresses: list[str]) -> list[tuple[str, socket.socket]]:
    from pybuildkit.appliance.daemon.listeners import default_address

    out = []
    for address in addresses or [default_address()]:
        scheme, _, path = address.partition("://")
        if scheme != "unix":
            raise SystemExit(f"{PROG}: --addr {address}: only unix:// sockets are handed to the rootless daemon")
        sock_path = Path(path)
        sock_path.parent.mkdir(parents=True, exist_ok=True)
        sock_path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)
        try:
            sock.bind(str(sock_path))
        finally:
            os.umask(old)
        sock.listen(128)
        out.append(("buildkitd", sock))
    return out


def rootlesskit_command(state_dir: Path, child: list[str], *, net: str) -> list[str]:
    cmd = ["rootlesskit", f"--net={net}", "--copy-up=/etc", "--copy-up=/run", f"--state-dir={state_dir}"]
    if net == "slirp4netns":
        cmd.append("--disable-host-loopback")
    return cmd + child


def _delegated_cgroup() -> str:
    """Ask systemd for a delegated scope now, while D-Bus still knows who we are (it does not
    inside the user namespace); rootlesskit and the daemon inherit it, and the daemon inside
    uses it (appliance/systemd/cgroup.py)."""
    import asyncio

    from pybuildkit.appliance.systemd.cgroup import find_or_request, launcher_argument

    return launcher_argument(asyncio.run(find_or_request()))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    if shutil.which("rootlesskit") is None:
        print(f"{PROG}: error: rootlesskit is not installed (apt install rootlesskit slirp4netns uidmap)",
              file=sys.stderr)
        return 1
    from pybuildkit.appliance.config import load_config
    from pybuildkit.solver.errors import BuildError

    try:
        config = load_config(args.config, root=args.root)
    except BuildError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        return 1
    net = args.rootless_net or config.rootless_network
    listeners = listen_fds() or _own_listeners(args.addr)
    root = config.root
    rundir = root / "rootless"
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True, mode=0o700)
    handoff = rundir / "handoff.sock"
    child = [sys.executable, "-m", "pybuildkit.appliance.daemon.main", "--rootless-child",
             "--listen-handoff", str(handoff), "--root", str(root)]
    if args.config:
        child += ["--config", str(args.config)]
    if args.debug:
        child.append("--debug")
    child += ["--cgroup-from-launcher", _delegated_cgroup()]
    handing = threading.Thread(target=serve_listeners, args=(str(handoff), listeners), daemon=True)
    handing.start()
    # the daemon inside has another pid: systemd's WATCHDOG_PID (ours) would switch its
    # watchdog off; NotifyAccess=all lets its WATCHDOG=1 count
    env = {k: v for k, v in os.environ.items() if k != "WATCHDOG_PID"}
    proc = subprocess.Popen(rootlesskit_command(rundir / "state", child, net=net),
                            pass_fds=(), start_new_session=False, env=env)

    def forward(signum: int, _frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = proc.wait()
    for _, sock in listeners:
        sock.close()
    shutil.rmtree(rundir, ignore_errors=True)
    return code if code >= 0 else 128 - code
