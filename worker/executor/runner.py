"""Running a step with crun or runc: probe once, then one `run` per step with piped stdio.

On cancellation the container is killed and deleted and its bundle removed, so no process,
mount or runtime state outlives the step.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.executor.emulator import emulator_for
from pybuildkit.worker.executor.spec import build_spec, hosts_content, resolv_content
from pybuildkit.worker.executor.types import ExecRequest, RuntimeInfo


def in_user_namespace() -> bool:
    """True when uid 0 here is not the host's root (rootlesskit, unshare --user)."""
    try:
        parts = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    return len(parts) >= 3 and not (parts[0] == "0" and parts[1] == "0" and parts[2] == "4294967295")


class ExecutorError(BuildError):
    pass


class Executor:
    def __init__(self, state_dir: Path, *, binary: str | None = None, rootless: bool | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.state_dir = state_dir
        self.bundles = state_dir / "bundles"
        self.runtime_root = state_dir / "runtime"
        for d in (self.bundles, self.runtime_root):
            d.mkdir(parents=True, exist_ok=True)
        self._wanted = binary
        self.rootless = in_user_namespace() if rootless is None else rootless
        self._log = log or (lambda _m: None)
        self._info: RuntimeInfo | None = None
        self._cleanup_leftovers()

    # ------------------------------------------------------------------ probing

    @property
    def info(self) -> RuntimeInfo:
        if self._info is None:
            self._info = self._probe()
        return self._info

    def _probe(self) -> RuntimeInfo:
        candidates = [self._wanted] if self._wanted else ["crun", "runc"]
        notes: list[str] = []
        for name in candidates:
            path = shutil.which(name)
            if path is None:
                notes.append(f"{name}: not installed")
                continue
            problem = self._try_runtime(path)
            if problem is None:
                version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.splitlines()
                info = RuntimeInfo(name, path, version[0] if version else "", self.rootless, tuple(notes))
                self._log(f"executor: using {name} ({info.version})" + (f"; {'; '.join(notes)}" if notes else ""))
                return info
            notes.append(f"{name}: {problem}")
            self._log(f"executor: {name} cannot run steps here ({problem}); trying the next runtime")
        raise ExecutorError("no usable OCI runtime: " + "; ".join(notes),
                            hint="install runc or crun (apt-get install runc)")

    def _try_runtime(self, path: str) -> str | None:
        """Run /bin/true from a one-binary rootfs; return why it failed, or None."""
        probe = self.bundles / f"probe-{secrets.token_hex(4)}"
        rootfs = probe / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        true_bin = shutil.which("busybox") or "/bin/busybox"
        try:
            if not os.path.exists(true_bin):
                return None  # nothing static to probe with; trust the binary
            shutil.copy(true_bin, rootfs / "bin" / "true")
            spec = {"ociVersion": "1.0.2", "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                                                       "env": [], "terminal": False},
                    "root": {"path": str(rootfs)},
                    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
                    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]}}
            (probe / "config.json").write_text(json.dumps(spec))
            proc = subprocess.run(self._argv(path, "run", "--bundle", str(probe), probe.name),
                                  capture_output=True, text=True, timeout=30)
            subprocess.run([path, "--root", str(self.runtime_root), "delete", "-f", probe.name],
                           capture_output=True)
            if proc.returncode != 0:
                return (proc.stderr.strip().splitlines() or ["exit code %d" % proc.returncode])[-1]
            return None
        finally:
            shutil.rmtree(probe, ignore_errors=True)

    def _argv(self, path: str, command: str, *rest: str) -> list[str]:
        argv = [path, "--root", str(self.runtime_root)]
        if os.path.basename(path) == "crun":
            argv.append("--cgroup-manager=disabled")
        argv.append(command)
        if command == "run":
            argv.append("--no-new-keyring")
        return argv + list(rest)

    def _cleanup_leftovers(self) -> None:
        """A killed daemon may leave containers and bundles: remove them at start-up."""
        for runtime in ("crun", "runc"):
            path = shutil.which(runtime)
            if path is None:
                continue
            listing = subprocess.run([path, "--root", str(self.runtime_root), "list", "-q"],
                                     capture_output=True, text=True)
            for container in listing.stdout.split():
                subprocess.run([path, "--root", str(self.runtime_root), "delete", "-f", container],
                               capture_output=True)
        for bundle in self.bundles.iterdir():
            shutil.rmtree(bundle, ignore_errors=True)

    # ------------------------------------------------------------------ running

    async def run(self, req: ExecRequest, *, stdout: Callable[[bytes], None],
                  stderr: Callable[[bytes], None]) -> int:
        info = self.info
        container_id = "pbk-" + secrets.token_hex(8)
        bundle = self.bundles / container_id
        bundle.mkdir()
        try:
            hosts, resolv = bundle / "hosts", bundle / "resolv.conf"
            hosts.write_text(hosts_content(req.hostname, req.extra_hosts))
            resolv.write_text(resolv_content(req.network))
            emulator = emulator_for(req.platform_arch)
            spec = build_spec(req, hosts_file=hosts, resolv_file=resolv, rootless=self.rootless, emulator=emulator)
            (bundle / "config.json").write_text(json.dumps(spec))
            proc = await asyncio.create_subprocess_exec(
                *self._argv(info.path, "run", "--bundle", str(bundle), container_id),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                await asyncio.gather(_pump(proc.stdout, stdout), _pump(proc.stderr, stderr))
                return await proc.wait()
            except asyncio.CancelledError:
                await self._kill(info, container_id, proc)
                raise
        finally:
            await asyncio.to_thread(self._delete, info, container_id, bundle)

    async def _kill(self, info: RuntimeInfo, container_id: str, proc: asyncio.subprocess.Process) -> None:
        kill = await asyncio.create_subprocess_exec(
            *self._argv(info.path, "kill", container_id, "KILL"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await kill.wait()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 10)

    def _delete(self, info: RuntimeInfo, container_id: str, bundle: Path) -> None:
        state = self.runtime_root / container_id
        if state.exists():
            subprocess.run(self._argv(info.path, "delete", "-f", container_id), capture_output=True)
        shutil.rmtree(bundle, ignore_errors=True)


async def _pump(stream: asyncio.StreamReader | None, sink: Callable[[bytes], None]) -> None:
    if stream is None:
        return
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return
        sink(chunk)
