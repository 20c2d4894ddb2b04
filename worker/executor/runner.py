"""Running one build step with crun or runc: probe once, then one `run` per step with piped
stdio, so a trivial step costs little more than the runtime's own start-up.

On cancellation (or any failure while the step runs) the container is killed with SIGKILL and
deleted and its bundle removed, so no process, mount or runtime state outlives the step.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker import process
from pybuildkit.worker.asyncutil import uninterruptible
from pybuildkit.binfmt.emulator import EmulatorPolicy, runs_natively
from pybuildkit.worker.executor.hosts import write_host_files
from pybuildkit.worker.executor.mounts import MountStubs
from pybuildkit.worker.executor.network import resolver_mode
from pybuildkit.worker.executor.runtime import (
    RUNTIMES,
    ExecutorError,
    Runtime,
    in_user_namespace,
    probe_runtime,
)
from pybuildkit.worker.executor.spec import SpecContext, build_spec, cgroups_path
from pybuildkit.worker.executor.types import ExecRequest, RuntimeInfo
from pybuildkit.worker.userdb import ResolvedUser, resolve_user

Sink = Callable[[bytes], None]
Note = tuple[str, str]  # (key for logging once, message)
_STOP_TIMEOUT = 10.0
_READ_CHUNK = 65536


class Executor:
    """Runs build steps in containers. `state_dir` holds the runtime's state (`runtime/`, one
    directory per live container) and the per-step bundles (`bundles/`); both are only ours."""

    def __init__(self, state_dir: Path, *, binary: str | None = None, rootless: bool | None = None,
                 log: Callable[[str], None] | None = None, emulators: EmulatorPolicy | None = None,
                 cgroup_parent: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.bundles = self.state_dir / "bundles"
        self.runtime_root = self.state_dir / "runtime"
        for directory in (self.bundles, self.runtime_root):
            directory.mkdir(parents=True, exist_ok=True)
        self.rootless = in_user_namespace() if rootless is None else rootless
        self._wanted = binary
        self.cgroup_parent = cgroup_parent  # the daemon's delegated cgroup, for steps that name none
        self._log = log or (lambda _message: None)
        self._emulators = emulators or EmulatorPolicy()
        self._runtime: Runtime | None = None
        self._probe_lock = asyncio.Lock()
        self._warned: set[str] = set()
        self._cleanup_leftovers()

    # -- choosing the runtime ----------------------------------------------------------------

    @property
    def info(self) -> RuntimeInfo:
        """The chosen runtime (probing synchronously on first use; prefer `await probe()`)."""
        if self._runtime is None:
            self._runtime = self._probe_now()
        return self._runtime.info

    async def probe(self) -> RuntimeInfo:
        """Find the runtime to use (crun first, then runc; `binary=` forces one) by starting a
        real container, and log the choice and the reason for any fallback."""
        return (await self._chosen()).info

    async def _chosen(self) -> Runtime:
        if self._runtime is None:
            async with self._probe_lock:
                if self._runtime is None:
                    self._runtime = await asyncio.to_thread(self._probe_now)
        return self._runtime

    def _probe_now(self) -> Runtime:
        return probe_runtime(self.runtime_root, self.bundles, wanted=self._wanted, rootless=self.rootless,
                             log=self._log, cgroup_parent=self.cgroup_parent)

    def _cleanup_leftovers(self) -> None:
        """A killed daemon may leave containers and bundles behind: remove them at start-up."""
        leftovers = [p.name for p in self.runtime_root.iterdir()]
        if leftovers:
            for name in RUNTIMES:
                path = shutil.which(name)
                if path is None:
                    continue
                for container in leftovers:
                    process.run([path, "--root", str(self.runtime_root), "delete", "-f", container],
                                check=False, timeout=30)
            for container in leftovers:
                shutil.rmtree(self.runtime_root / container, ignore_errors=True)
        for bundle in self.bundles.iterdir():
            shutil.rmtree(bundle, ignore_errors=True)

    # -- running a step ----------------------------------------------------------------------

    async def run(self, req: ExecRequest, *, stdout: Sink, stderr: Sink) -> int:
        """Run the step to completion and return its exit code, streaming its output as it comes.

        Cancelling the awaiting task kills and deletes the container before re-raising."""
        runtime = await self._chosen()
        container_id = "pbk-" + secrets.token_hex(8)
        bundle = self.bundles / container_id
        preparing = asyncio.ensure_future(asyncio.to_thread(self._prepare, req, runtime, container_id, bundle))
        try:
            stubs, notes = await uninterruptible(preparing)
        except BaseException:
            # cancelled while preparing: the thread went on, so give back what it claimed
            if preparing.done() and not preparing.cancelled() and preparing.exception() is None:
                await uninterruptible(asyncio.to_thread(preparing.result()[0].remove))
            shutil.rmtree(bundle, ignore_errors=True)
            raise
        for key, message in notes:
            self._warn_once(key, message)
        spawn = asyncio.ensure_future(asyncio.create_subprocess_exec(
            *runtime.argv("run", "--bundle", str(bundle), container_id),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True))  # terminal signals go to us, not to the runtime
        try:
            proc = await uninterruptible(spawn)  # never lose the handle of a started runtime
            await asyncio.gather(_pump(proc.stdout, stdout), _pump(proc.stderr, stderr))
            return await proc.wait()
        except BaseException:
            started = spawn.done() and not spawn.cancelled() and spawn.exception() is None
            await uninterruptible(self._stop(runtime, container_id, spawn.result() if started else None))
            raise
        finally:
            await uninterruptible(asyncio.to_thread(self._clean, runtime, container_id, bundle, stubs))

    def _prepare(self, req: ExecRequest, runtime: Runtime, container_id: str,
                 bundle: Path) -> tuple[MountStubs, list[Note]]:
        """Write the bundle (config.json, hosts, resolv.conf); runs in a worker thread, so log
        lines are returned as notes for the event loop to log."""
        user = _resolve_user(req.rootfs, req.user)
        notes: list[Note] = []
        bundle.mkdir(mode=0o711)
        try:
            hosts, resolv = write_host_files(bundle, req.hostname, req.extra_hosts, resolver_mode(req.network))
            ctx = SpecContext(
                user=user, hosts_file=hosts, resolv_file=resolv, rootless=self.rootless,
                emulator=self._emulator(req.platform_arch, notes),
                cgroups_path=self._cgroups_path(req, runtime, container_id, notes),
                cgroups=runtime.manages_cgroups)
            spec = build_spec(req, ctx)
            (bundle / "config.json").write_text(json.dumps(spec))
            stubs = MountStubs.record(req.rootfs, ["/etc/resolv.conf", "/etc/hosts",
                                                   *(mount.dest for mount in req.mounts)])
        except BaseException:
            shutil.rmtree(bundle, ignore_errors=True)
            raise
        return stubs, notes

    def _emulator(self, arch: str | None, notes: list[Note]) -> Path | None:
        emulator = self._emulators.emulator_for(arch)
        if arch and emulator is None and not runs_natively(arch) and not self._emulators.handler_check(arch):
            raise ExecutorError(
                f"cannot run steps for platform linux/{arch} here: no binfmt_misc handler is registered for "
                "it and no QEMU emulator is installed",
                hint=f"apt install qemu-user-static, or register a handler with `pybuildkit-binfmt install {arch}`")
        if emulator is not None:
            notes.append((f"emulator-{arch}",
                          f"executor: running {arch} steps through {emulator} (no binfmt_misc handler registered)"))
        return emulator

    def _cgroups_path(self, req: ExecRequest, runtime: Runtime, container_id: str, notes: list[Note]) -> str | None:
        if not req.cgroup_parent:  # the delegated cgroup, where the probe proved the runtime can use it
            return cgroups_path(runtime.cgroup_parent, container_id)
        if not runtime.manages_cgroups:
            notes.append(("cgroup-parent", (f"executor: cgroup parent {req.cgroup_parent!r} ignored: "
                                            f"{runtime.info.name} runs without cgroup management here")))
            return None
        return cgroups_path(req.cgroup_parent, container_id)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._log(message)

    async def _stop(self, runtime: Runtime, container_id: str, proc: asyncio.subprocess.Process | None) -> None:
        """SIGKILL the container's init (the whole PID namespace dies with it) and reap the
        runtime. The runtime may not have written its state yet, so keep trying until the
        container can be killed or the runtime has exited."""
        if proc is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STOP_TIMEOUT
        state = runtime.root / container_id
        while proc.returncode is None and loop.time() < deadline:
            if state.exists():
                code, _, _ = await process.run_async(runtime.argv("kill", container_id, "KILL"), check=False)
                if code == 0:
                    break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), 0.02)
        if proc.returncode is None:
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), _STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    def _clean(self, runtime: Runtime, container_id: str, bundle: Path, stubs: MountStubs) -> None:
        if (runtime.root / container_id).exists():
            result = process.run(runtime.argv("delete", "-f", container_id), check=False, timeout=60)
            if result.returncode != 0 and (runtime.root / container_id).exists():
                self._log(f"executor: could not delete container {container_id}: "
                          f"{result.stderr.decode(errors='replace').strip()}")
        stubs.remove()
        shutil.rmtree(bundle, ignore_errors=True)


def _resolve_user(rootfs: Path, spec: str) -> ResolvedUser:
    """`root` means uid 0 even in a rootfs without /etc/passwd (a FROM scratch step), as in
    BuildKit; every other name must be in the image's passwd."""
    name, sep, group = (spec or "root").partition(":")
    try:
        return resolve_user(rootfs, spec)
    except BuildError:
        if name != "root":
            raise
        return resolve_user(rootfs, "0" + (sep + ("0" if group == "root" else group)))


async def _pump(stream: asyncio.StreamReader | None, sink: Sink) -> None:
    if stream is None:
        return
    while chunk := await stream.read(_READ_CHUNK):
        sink(chunk)


__all__ = ["Executor"]
