"""The daemon's Dockerfile frontend in a process of its own, under hard time and memory bounds.

A thread is not enough in the daemon: parse and convert are CPU-bound Python, and a thread that
holds the interpreter lock (or a garbage collection over its objects) slows the event loop of
every other build by tens of milliseconds a turn. So each build's frontend is forked from a warm
fork server (`python -m pybuildkit.appliance.frontend_process`, started once, frontend already
imported: a fork costs milliseconds where an interpreter start costs a third of a second), with
RLIMIT_AS set to its memory budget, and killed through its pidfd at its deadline if it has not
stopped by itself. Inside, the cooperative budget (`pybuildkit.solver.budget`) usually stops it
first with a clean error. Image lookups come back over the pipe and run on the daemon's loop,
where the registry clients and credentials live; their wait is not charged to the Dockerfile.

The server is single-threaded (a fork there is safe, unlike one of the daemon with its gRPC
threads); it exits when the daemon's end of its control socket closes.
"""
from __future__ import annotations

import asyncio
import dataclasses
import importlib
import os
import pickle
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from pybuildkit.appliance.frontend_runner import GRACE_SECONDS, FrontendBudget
from pybuildkit.solver.budget import Budget, active
from pybuildkit.solver.errors import BuildError

if TYPE_CHECKING:
    from pybuildkit.frontend.dockerfile.builder import FrontendInputs, FrontendResult
    from pybuildkit.solver.platforms import Platform


class _Server:
    """The daemon's handle on the fork server: started on first use (or by `warm_up`), again
    if it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._control: socket.socket | None = None

    def _start(self) -> socket.socket:
        if self._control is not None:
            self._control.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "pybuildkit.appliance.frontend_process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        self._control = ours
        return ours

    def start_in_background(self) -> None:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._start()

    def connect(self) -> tuple[socket.socket, int]:
        """A socket to a freshly forked frontend process, and that process's pidfd."""
        with self._lock:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            with theirs:
                for attempt in (1, 2):
                    control = self._control
                    if control is None or self._process is None or self._process.poll() is not None:
                        control = self._start()
                    try:
                        socket.send_fds(control, [b"f"], [theirs.fileno()])
                        break
                    except OSError:
                        if attempt == 2:
                            raise
                        self._process = None
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
        if not fds:
            ours.close()
            raise BuildError("the Dockerfile frontend process did not start")
        return ours, fds[0]


_server = _Server()


def warm_up() -> None:
    """Start the fork server now (an interpreter start and the imports), not in a build. It
    does not wait for it: the daemon is ready before the server is (the first build's fork
    waits if it comes that early), so readiness does not pay for the frontend's imports."""
    _server.start_in_background()


async def run_in_process(inputs: FrontendInputs, limits: FrontendBudget) -> FrontendResult:
    """The `dockerfile.v0` frontend on `inputs` in a child process; BudgetExceededError when over."""
    resolver = inputs.resolve_image_config
    sock, pidfd = await asyncio.to_thread(_server.connect)
    ours = Connection(sock.detach())
    budget = limits.start()  # the daemon's copy: the deadline it kills at
    loop = asyncio.get_running_loop()
    messages: asyncio.Queue[tuple | None] = asyncio.Queue()
    finished = False
    try:
        await asyncio.to_thread(ours.send, (dataclasses.replace(inputs, resolve_image_config=None),
                                            resolver is not None, limits))
        threading.Thread(target=_pump, args=(ours, loop, messages), name="frontend-pipe", daemon=True).start()
        while True:
            remaining = budget.deadline + GRACE_SECONDS - time.monotonic()
            try:
                message = await asyncio.wait_for(messages.get(), max(remaining, 0.0))
            except asyncio.TimeoutError:
                if time.monotonic() > budget.deadline + GRACE_SECONDS:
                    raise budget.over_time() from None
                continue
            if message is None:
                raise BuildError("the Dockerfile frontend stopped unexpectedly",
                                 hint="it may have run out of its memory budget ([frontend] memory-budget)")
            kind, payload = message
            if kind == "result":
                finished = True
                from pybuildkit.solver.pb import ops_pb2 as pb

                return dataclasses.replace(payload, definitions=[pb.Definition.FromString(d) for d in payload.definitions])
            if kind == "error":
                finished = True
                raise _restored(payload)
            assert resolver is not None and kind == "resolve"
            with budget.waiting():
                ours.send(await _answer(resolver, *payload))
    finally:
        if not finished:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.close(pidfd)
        ours.close()


async def _answer(resolver: Callable[[str, Platform], Awaitable[Any]], ref: str, platform: Platform) -> tuple:
    try:
        return "ok", await resolver(ref, platform)
    except Exception as exc:  # noqa: BLE001 - the frontend turns it into its own located error
        return "error", _portable(exc)


def _pump(conn: Connection, loop: asyncio.AbstractEventLoop, messages: asyncio.Queue) -> None:
    """The child's messages, read off the loop (a result may be large), handed to the loop."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = None
        try:
            loop.call_soon_threadsafe(messages.put_nowait, message)
        except RuntimeError:  # the loop is gone: the daemon is stopping
            return
        if message is None or message[0] != "resolve":
            return


# -- in the child ----------------------------------------------------------------------------


def _serve(control_fd: int) -> None:
    """The fork server's loop: one forked child per socket the daemon sends. The child is forked
    ahead, before the build asks (a fork of this heap costs a few milliseconds, in the way of
    every build's frontend otherwise); the socket is handed to it and the next one forked."""
    _rehearse()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    control = socket.socket(fileno=control_fd)
    spare = _fork_spare(control)
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(control, 1, 1)
        except OSError:
            return
        if not fds:  # the daemon is gone (and the spare, reading EOF, with it)
            return
        try:
            socket.send_fds(spare, [b"f"], fds)
        except OSError:  # the spare died: this request gets a fresh one
            spare.close()
            spare = _fork_spare(control)
            socket.send_fds(spare, [b"f"], fds)
        os.close(fds[0])
        spare.close()
        spare = _fork_spare(control)


#: what `ps` shows of a forked child waiting for a build, and of one converting a build's Dockerfile
SPARE_NAME = "pbk-fe-spare"
WORKING_NAME = "pbk-frontend"


def _name_process(name: str) -> None:
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name)
    except OSError:
        pass  # a name is for people reading `ps`; nothing depends on it


def _fork_spare(control: socket.socket) -> socket.socket:
    """A forked child waiting for its build's socket; the server's end of its line."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.fork() == 0:
        control.close()
        ours.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        code = 0
        try:
            _name_process(SPARE_NAME)
            _rehearse(freeze=False)  # the pages a conversion touches, copied now, not in the build's time
            _, fds, _, _ = socket.recv_fds(theirs, 1, 1)
            theirs.close()
            if fds:  # none: the server is gone
                _name_process(WORKING_NAME)
                _child(socket.socket(fileno=fds[0]))
        except BaseException:  # noqa: BLE001 - the daemon sees the pipe close
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    return ours


def _rehearse(*, freeze: bool = True) -> None:
    """One small conversion in the server, so the modules the frontend imports as it goes are
    imported once here instead of in every child; then the heap is frozen, so the children's
    garbage collections do not touch (and copy) the server's pages. A spare child rehearses
    too, unfrozen: to copy the pages a conversion writes before its build comes."""
    import gc

    from pybuildkit.frontend.dockerfile.builder import FrontendInputs, build
    from pybuildkit.solver.platforms import parse_platform

    dockerfile = (b"# syntax=docker/dockerfile:1\n# check=error=true\nARG B=scratch\nFROM ${B} AS base\n"
                  b"ENV A=1\nWORKDIR /w\nCOPY --chmod=644 a /a\nADD b /b\nRUN --mount=type=cache,target=/c echo $A\n"
                  b"USER 1\nEXPOSE 80\nLABEL l=1\nHEALTHCHECK CMD true\nFROM base\nCOPY --from=base /a /a\n"
                  b"RUN <<EOF\necho\nEOF\nCMD [\"true\"]\n")
    attrs = {"platform": "linux/amd64", "build-arg:X": "1", "label:x": "1"}
    for extra in ({}, {"method": "check"}):
        try:
            asyncio.run(build(FrontendInputs(dockerfile, "Dockerfile", b"*.tmp\n", {**attrs, **extra},
                                             build_platform=parse_platform("linux/amd64"))))
        except BuildError:
            pass
    if freeze:
        gc.freeze()


def _child(sock: socket.socket) -> None:
    from pybuildkit.frontend.dockerfile.builder import build

    pidfd = os.pidfd_open(os.getpid())
    socket.send_fds(sock, [b"p"], [pidfd])  # the daemon's handle to kill this process, race-free
    os.close(pidfd)
    conn = Connection(sock.detach())
    inputs, has_resolver, limits = conn.recv()
    _limit_address_space(limits.max_bytes)
    budget = limits.start()
    if has_resolver:
        inputs = dataclasses.replace(inputs, resolve_image_config=_remote_resolver(conn, budget))
    try:
        with active(budget):
            result = asyncio.run(build(inputs))
        # definitions as bytes: generated protobuf classes do not pickle
        conn.send(("result", dataclasses.replace(result, definitions=[d.SerializeToString() for d in result.definitions])))
    except MemoryError:
        conn.send(("error", _portable(budget.over_memory())))
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the daemon, typed
        conn.send(("error", _portable(exc)))


#: address space past the budget for the interpreter's own work (and for reporting the error):
#: the budget counts what the Dockerfile makes the frontend produce, the hard limit all of it
INTERPRETER_SLACK = 64 << 20


def _limit_address_space(budget: int) -> None:
    """What the child already maps (the interpreter, the frontend), plus its budget and slack."""
    with open("/proc/self/status") as status:
        mapped = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    limit = mapped + budget + INTERPRETER_SLACK
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _remote_resolver(conn: Connection, budget: Budget) -> Callable[[str, Platform], Awaitable[tuple[str, dict]]]:
    async def resolve(ref: str, platform: Platform) -> tuple[str, dict]:
        with budget.waiting():
            conn.send(("resolve", (ref, platform)))
            kind, payload = conn.recv()  # the child does nothing else meanwhile: blocking is fine
        if kind == "error":
            raise _restored(payload)
        return payload

    return resolve


# -- errors across the pipe ----------------------------------------------------------------------


def _portable(exc: BaseException) -> tuple[str, str, str, dict]:
    """An exception as (module, class, message, attributes): typed errors take keyword-only
    arguments, which pickling an exception itself would lose."""
    attrs = {}
    for key, value in vars(exc).items():
        try:
            pickle.dumps(value)
        except Exception:  # noqa: BLE001 - an attribute that cannot travel is left behind
            continue
        attrs[key] = value
    message = getattr(exc, "message", None) or str(exc)
    return type(exc).__module__, type(exc).__qualname__, message, attrs


def _restored(payload: tuple[str, str, str, dict]) -> BaseException:
    module, name, message, attrs = payload
    try:
        cls: Any = importlib.import_module(module)
        for part in name.split("."):
            cls = getattr(cls, part)
    except (ImportError, AttributeError):
        cls = BuildError
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        cls = BuildError
    exc = cls.__new__(cls)
    BaseException.__init__(exc, message)
    exc.__dict__.update(attrs)
    if isinstance(exc, BuildError):
        exc.message = message
        exc.hint = attrs.get("hint")
    return exc


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
