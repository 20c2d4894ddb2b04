"""`pybuildkitd`: the build daemon (BuildKit's Control API, sessions and the frontend gateway)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from pybuildkit.appliance.config import Config, load_config
from pybuildkit.appliance.daemon import listeners, rootlock
from pybuildkit.solver.errors import BuildError

if TYPE_CHECKING:
    from pybuildkit.appliance.daemon.jobs import BuildJob, Jobs

PROG = "pybuildkitd"
log = logging.getLogger(PROG)
MAX_MESSAGE = 64 << 20
GC_DELAY = 1.0  # seconds without a build before the GC of the last one runs
NOTE_DELAY = 2.0  # seconds of no build before the network note is logged
GC_INTERVAL = 3600.0
#: how long a stopping daemon waits for cancelled builds to remove their containers and mounts
STOP_CLEANUP_TIMEOUT = 60.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="BuildKit-compatible build daemon.")
    p.add_argument("--addr", action="append", default=[],
                   help="listening address, repeatable: unix://PATH, tcp://HOST:PORT (mTLS from [grpc.tls]), "
                        "fd:// or fd://NAME (systemd socket activation); default "
                        + listeners.default_address())
    p.add_argument("--root", type=Path, help="state directory (default /var/lib/pybuildkit, rootless "
                                             "~/.local/share/pybuildkit)")
    p.add_argument("--config", type=Path, help="buildkitd.toml-format config (default /etc/pybuildkit/pybuildkitd.toml)")
    p.add_argument("--debug", action="store_true", help="debug logging")
    p.add_argument("--rootless", action="store_true",
                   help="start under rootlesskit as this unprivileged user (the systemd service does this)")
    p.add_argument("--rootless-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--listen-handoff", help=argparse.SUPPRESS)
    p.add_argument("--cgroup-from-launcher", default="", help=argparse.SUPPRESS)
    p.add_argument("--wait-lock", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another daemon to release the root (daemonless runs)")
    # for pybuildctl --daemonless: a daemon of one client and one build
    p.add_argument("--ready-fd", type=int, default=-1, help=argparse.SUPPRESS)  # a line there once serving
    # one client and its build: the Dockerfile frontend inline (no fork server to start; its
    # interpreter lock slows nobody else's build), no start-up notes after serving
    p.add_argument("--one-client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--version", action="version", version=f"{PROG} v0.2.0")
    return p


def _worker_id(root: Path) -> str:
    path = root / "worker-id"
    try:
        return path.read_text().strip()
    except OSError:
        value = secrets.token_hex(13)[:25]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(value + "\n")
        os.replace(tmp, path)
        return value


def _inherited_listeners(args: argparse.Namespace) -> list[tuple[str, object]]:
    if args.listen_handoff:
        from pybuildkit.appliance.rootless.fdpass import receive_listeners

        return list(receive_listeners(args.listen_handoff))
    if os.environ.get("LISTEN_FDS"):
        from pybuildkit.appliance.systemd.listenfds import listen_fds

        return list(listen_fds())
    return []


def _private_binfmt(args: argparse.Namespace) -> None:
    """In the rootless namespace: our own binfmt_misc instance, no root step needed."""
    if not args.rootless_child:
        return
    from pybuildkit.binfmt.rootless import setup_private_binfmt

    log.info("%s", setup_private_binfmt().summary())


async def _health_check(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"\x08\x01"  # grpc.health.v1.HealthCheckResponse{status: SERVING}


def _health_handler() -> grpc.GenericRpcHandler:
    ident = lambda b: b  # noqa: E731
    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(_health_check, request_deserializer=ident,
                                                     response_serializer=ident)})


def _notifier():
    if not os.environ.get("NOTIFY_SOCKET"):
        return None
    try:
        from pybuildkit.appliance.systemd.notify import Notifier
    except ImportError:
        return None
    return Notifier.from_env()


async def _say_step_network(jobs: Jobs, stop: asyncio.Event) -> None:
    """The log's note on the steps' network, once the daemon has been idle a moment (or as it
    stops): pyroute2 takes ~0.2 s of the interpreter lock to load and ask, which the first
    build of a daemon (a socket-activated one starts it the moment it is ready) would pay."""
    while not stop.is_set() and (idle := jobs.idle_for()) < NOTE_DELAY:
        try:
            await asyncio.wait_for(stop.wait(), NOTE_DELAY - idle)
        except asyncio.TimeoutError:
            pass
    from pybuildkit.worker.executor.netinfo import step_network

    network = await asyncio.to_thread(step_network)
    if network is not None:
        log.info("%s", network.summary())


def _preload() -> None:
    """What nearly every build imports (the registry client and httpx; the Dockerfile frontend,
    whose inputs the daemon makes even when the frontend runs in a process of its own): at
    start, beside the worker's own, not in the first build."""
    import anyio  # noqa: F401  (httpcore imports it at its first request: ~15 ms)

    import pybuildkit.frontend.dockerfile.builder  # noqa: F401
    import pybuildkit.worker.registry.client  # noqa: F401


async def _delegated_cgroup(args: argparse.Namespace) -> str | None:
    """The parent for the steps' cgroups, from systemd's delegation; one log line either way.
    Inside rootlesskit the bus is out of reach: the launcher asked before it entered."""
    from pybuildkit.appliance.systemd.cgroup import Delegation, setup

    outcome = await setup(bus_allowed=not args.rootless_child, launcher=args.cgroup_from_launcher)
    log.info("%s", outcome.summary())
    return outcome.steps_parent if isinstance(outcome, Delegation) else None


def _wait_for_children_on_pidfds() -> None:
    """Each step's runtime is a subprocess: Python 3.11 waits for every one in a thread of its
    own (ThreadedChildWatcher); a pidfd in the event loop costs no thread (~0.5 ms a step).
    3.12 does this by itself; a kernel without pidfd_open keeps the default."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)


async def serve(config: Config, args: argparse.Namespace) -> int:
    from pybuildkit.appliance.build import make_builder
    from pybuildkit.appliance.daemon.control import ControlService
    from pybuildkit.appliance.daemon.gateway import GatewayService
    from pybuildkit.appliance.daemon.jobs import Jobs
    from pybuildkit.appliance.daemon.platforms import WorkerPlatforms
    from pybuildkit.appliance.daemon.usage import configured_policies, default_policies

    _wait_for_children_on_pidfds()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    inherited = _inherited_listeners(args)
    notifier = _notifier()  # before any child starts: it takes NOTIFY_SOCKET out of the environment
    cgroup_parent = await _delegated_cgroup(args)
    if cgroup_parent is None:  # before any thread: unshare(CLONE_NEWNS) needs a single-threaded process
        from pybuildkit.worker.executor.cgroupview import hide_unified_hierarchy

        hidden = hide_unified_hierarchy()
        if hidden:
            log.info("%s", hidden)
    await asyncio.to_thread(_private_binfmt, args)
    building = asyncio.to_thread(make_builder, config, log=lambda m: log.info("%s", m), cgroup_parent=cgroup_parent,
                                 isolate_frontend=not args.one_client)
    preloading = asyncio.to_thread(_preload)
    if args.one_client:
        builder, _ = await asyncio.gather(building, preloading)
    else:
        from pybuildkit.appliance.frontend_process import warm_up

        # the fork server starts meanwhile
        builder, _, _ = await asyncio.gather(building, preloading, asyncio.to_thread(warm_up))
    worker = builder.worker
    tls = asyncio.ensure_future(asyncio.to_thread(worker.registry.prepare_tls))  # beside the first build
    platforms = WorkerPlatforms(config.root, known=lambda found: log.info("platforms %s", ", ".join(found)))
    platforms.start()  # a client's ListWorkers, the first thing it sends, waits for it
    jobs = Jobs()
    sessions = None
    try:
        from pybuildkit.appliance.session.manager import SessionManager
    except ImportError:
        log.warning("sessions unavailable: client files, secrets and outputs cannot be transferred")
    else:
        sessions = SessionManager()
    policies = [] if not config.worker.gc else (configured_policies(config.worker.gc_policies, config.root)
                                                if config.worker.gc_policies else default_policies(config.root))
    gc_state = {"pending": False}

    def after_build() -> None:
        if policies and not gc_state["pending"]:
            gc_state["pending"] = True
            loop.call_later(GC_DELAY, gc_when_idle)

    def gc_when_idle() -> None:
        """GC takes the interpreter lock for tens of milliseconds: not while a build runs, nor in
        the gap between two builds of a burst (a rebuild right after another would pay it)."""
        idle = jobs.idle_for()
        if idle < GC_DELAY:
            loop.call_later(GC_DELAY - idle, gc_when_idle)
        else:
            asyncio.ensure_future(run_gc())

    control = ControlService(builder, jobs, sessions=sessions, worker_id=_worker_id(config.root),
                             platforms=platforms.get, gc_policies=policies, after_build=after_build)

    async def run_gc() -> None:
        gc_state["pending"] = False
        busy = control._busy_since()
        removed = await asyncio.to_thread(control.usage.gc, policies, busy_since=busy)
        if removed:
            log.info("gc: removed %d cache records", removed)

    gateway = GatewayService(builder, jobs, control.worker_record)
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                      ("grpc.max_send_message_length", MAX_MESSAGE)])
    server.add_generic_rpc_handlers((control.handler(), gateway.handler(), _health_handler()))

    bindings: list[listeners.Binding] = []
    addresses = list(args.addr) or list(config.grpc.addresses) or ([] if inherited else [listeners.default_address()])
    private_dir: Path | None = None
    private_sock: Path | None = None
    wants_fd = [a for a in addresses if a.startswith("fd://")]
    if inherited and not wants_fd:
        wants_fd = ["fd://"]
    for address in addresses:
        scheme, rest = listeners.parse_address(address)
        if scheme == "unix":
            bindings.append(listeners.bind_unix(server, Path(rest)))
        elif scheme == "tcp":
            bindings.append(listeners.bind_tcp(server, rest, config.grpc.tls))
    if wants_fd:
        if not inherited:
            raise BuildError(f"--addr {wants_fd[0]}: no sockets were passed (LISTEN_FDS is not set)",
                             hint="start pybuildkitd from a systemd socket unit, or use unix://PATH")
        private_dir = Path(tempfile.mkdtemp(prefix="pybuildkitd-"))
        private_sock = private_dir / "grpc.sock"
        server.add_insecure_port(f"unix:{private_sock}")
    await server.start()
    for binding in bindings:
        listeners.finish_unix(binding, config.grpc.gid)
    if wants_fd and private_sock is not None:
        names = {a[len("fd://"):] for a in wants_fd}
        for name, sock in inherited:
            if "" in names or name in names:
                bindings.append(await listeners.relay(sock, private_sock, f"fd://{name}"))  # type: ignore[arg-type]

    if args.ready_fd >= 0:
        with open(args.ready_fd, "w", closefd=True) as ready:
            ready.write("serving\n")
    runtime = await asyncio.to_thread(lambda: worker.executor.info)
    summary = (f"serving {', '.join(b.address for b in bindings)}; runtime {runtime.name} {runtime.version}; "
               f"snapshotter {worker.snapshots.driver}")
    log.info("%s", summary)
    watchdog = None
    if notifier is not None:
        notifier.ready(f"ready: {runtime.name}, {worker.snapshots.driver}")
        watchdog = asyncio.ensure_future(notifier.watchdog_loop())

    async def gc_timer() -> None:
        while policies:
            await asyncio.sleep(GC_INTERVAL)
            await run_gc()

    timer = asyncio.ensure_future(gc_timer())
    network_note = None if args.one_client else asyncio.ensure_future(_say_step_network(jobs, stop))
    await stop.wait()
    log.info("stopping: cancelling %d running builds", len(jobs.active()))
    if notifier is not None:
        notifier.stopping()
    for task in (timer, watchdog, tls):
        if task is not None:
            task.cancel()
    for binding in bindings:
        if binding.relay is not None:
            binding.relay.close()
    running = jobs.active()
    await server.stop(grace=2.0)
    await _builds_cleaned_up(running)
    if network_note is not None:  # if it was not said yet, it is said as the daemon stops
        try:
            await asyncio.wait_for(network_note, NOTE_DELAY)
        except (asyncio.TimeoutError, Exception):
            log.debug("no network note", exc_info=True)
    await worker.aclose()
    for binding in bindings:
        if binding.unix_path is not None:
            binding.unix_path.unlink(missing_ok=True)
    if private_dir is not None:
        shutil.rmtree(private_dir, ignore_errors=True)
    log.info("stopped")
    return 0


async def _builds_cleaned_up(running: list[BuildJob]) -> None:
    """Cancelled builds are still killing their containers and unmounting: returning earlier
    would let asyncio.run cancel that clean-up half-way and leave the root to the next start's
    recovery (or, in Python 3.11, hang on a subprocess cancelled while it was being spawned)."""
    if not running:
        return
    waits = [asyncio.ensure_future(job.done.wait()) for job in running]
    _, pending = await asyncio.wait(waits, timeout=STOP_CLEANUP_TIMEOUT)
    for wait in pending:
        wait.cancel()
    if pending:
        log.warning("stopping: %d builds did not finish their clean-up in %.0f s; the next start recovers the root",
                    len(pending), STOP_CLEANUP_TIMEOUT)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(argv if argv is not None else sys.argv[1:])
    if "--rootless" in arguments:  # the launcher has options of its own
        from pybuildkit.appliance.rootless.launcher import main as launcher_main

        return launcher_main(arguments)
    args = build_parser().parse_args(arguments)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, stream=sys.stderr,
                        format=f"{PROG}: %(message)s")
    try:
        config = load_config(args.config, root=args.root)
        lock = rootlock.acquire(config.root, wait=args.wait_lock)
    except BuildError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(serve(config, args))
    except BuildError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: one line for the user, the traceback with --debug
        log.debug("start-up failed", exc_info=True)
        print(f"{PROG}: error: internal error during start-up: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.release()


def entry() -> None:
    """The `pybuildkitd` command: exits without the interpreter's teardown (grpc's and the
    thread pools' clean-up at exit), which costs ~130 ms after everything is stopped, closed
    and unlocked; a `--daemonless` build waits for exactly that exit."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    entry()
