"""ExecOp: run a process in a container over snapshots, commit the writable mounts."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf import json_format

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.scheduler import CacheMap, Dep, OpContext
from pybuildkit.worker.providers import maybe_await
from pybuildkit.worker.snapshot.store import ActiveLayer, Snapshot
from pybuildkit.worker.sshproxy import agent_proxy

if TYPE_CHECKING:
    from pybuildkit.worker.worker import Worker

_TAIL_LINES = 10


class ExecFailedError(BuildError):
    def __init__(self, message: str, output_tail: list[str]) -> None:
        super().__init__(message)
        self.output_tail = output_tail


def _go_quote(text: str) -> str:
    """Go's %q for the message text BuildKit prints on a failed process."""
    return json.dumps(text, ensure_ascii=False)


class ExecOp:
    def __init__(self, worker: "Worker", op: pb.Op) -> None:
        self.worker = worker
        self.op = op
        self.exec = op.exec

    async def cache_map(self, ctx: OpContext, inputs: Sequence[object]) -> CacheMap:
        clone = pb.ExecOp()
        clone.CopyFrom(self.exec)
        clone.meta.ClearField("proxy_env")
        for host in clone.meta.extraHosts:
            host.IP = ""
        for mount in clone.mounts:
            mount.selector = ""
        payload = {
            "Type": "exec",
            "Exec": json_format.MessageToDict(clone, preserving_proto_field_name=True),
            "OS": self.op.platform.OS, "Arch": self.op.platform.Architecture,
            "Variant": self.op.platform.Variant,
        }
        digest = "sha256:" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        deps: list[Dep] = []
        for index in range(len(self.op.inputs)):
            selectors: list[str] = []
            content = False
            for mount in self.exec.mounts:
                if mount.input != index or mount.mountType in (pb.SECRET, pb.SSH, pb.TMPFS):
                    continue
                if mount.selector:
                    selectors.append(posixpath.join("/", mount.selector))
                safe = mount.dest != "/" and (mount.output < 0 or mount.readonly or not mount.selector)
                if mount.contentCache == pb.ON:
                    safe = True
                elif mount.contentCache == pb.OFF:
                    safe = False
                content = content or safe
                if mount.dest == "/":
                    content = False
                    break
            deps.append(Dep(tuple(sorted(set(selectors))), content and bool(selectors) or content))
        return CacheMap(digest, tuple(deps))

    async def execute(self, ctx: OpContext, inputs: Sequence[Snapshot | None]) -> list[Snapshot]:
        from pybuildkit.worker.executor import ExecRequest, Mount, NetMode, SecurityMode

        worker = self.worker
        meta = self.exec.meta
        self._check_entitlements(ctx)
        outputs: dict[int, ActiveLayer] = {}
        async with contextlib.AsyncExitStack() as stack:
            scratch = Path(tempfile.mkdtemp(prefix="exec-", dir=worker.run_dir))
            stack.callback(shutil.rmtree, scratch, True)
            root_mount = next((mt for mt in self.exec.mounts if mt.dest == "/"), None)
            if root_mount is None:
                raise BuildError("invalid exec op: no root mount")
            rootfs, root_layer = await self._writable(stack, root_mount, inputs)
            if root_mount.output >= 0:
                outputs[root_mount.output] = root_layer
            else:
                stack.callback(root_layer.discard)
            mounts: list[Mount] = []
            env = list(meta.env) + _proxy_env(meta)
            for mount in self.exec.mounts:
                if mount.dest == "/":
                    continue
                made = await self._mount(stack, ctx, mount, inputs, outputs, scratch, env)
                if made is not None:
                    mounts.append(made)
            for secret_env in self.exec.secretenv:
                value = await self._secret(ctx, secret_env.ID, secret_env.optional)
                if value is not None:
                    env.append(f"{secret_env.name}={value.decode(errors='replace')}")
            stubs = _missing_targets(rootfs, [mt.dest for mt in mounts])
            tail: deque[str] = deque(maxlen=_TAIL_LINES)

            def sink(stream: int):
                def write(data: bytes) -> None:
                    ctx.log(stream, data)
                    tail.extend(data.decode(errors="replace").splitlines())
                return write

            request = ExecRequest(
                args=tuple(meta.args), env=tuple(env), cwd=meta.cwd or "/", user=meta.user or "root",
                rootfs=rootfs, mounts=tuple(mounts), hostname=meta.hostname or "buildkitsandbox",
                network={pb.HOST: NetMode.HOST, pb.NONE: NetMode.NONE}.get(self.exec.network, NetMode.SANDBOX),
                security=SecurityMode.INSECURE if self.exec.security == pb.INSECURE else SecurityMode.SANDBOX,
                extra_hosts=tuple((h.Host, h.IP) for h in meta.extraHosts),
                ulimits=tuple((u.Name, u.Soft, u.Hard) for u in meta.ulimit),
                platform_arch=self.op.platform.Architecture or None,
                readonly_rootfs=root_mount.readonly,
            )
            code = await worker.executor.run(request, stdout=sink(1), stderr=sink(2))
            _remove_stubs(rootfs, stubs)
            valid = list(meta.validExitCodes) or [0]
            if code not in valid:
                raise ExecFailedError(
                    f"process {_go_quote(' '.join(meta.args))} did not complete successfully: exit code: {code}",
                    list(tail))
        results: list[Snapshot] = []
        for index in sorted(outputs):
            results.append(outputs[index].commit(description=f"exec {' '.join(meta.args)}"[:200]))
        return results

    def _check_entitlements(self, ctx: OpContext) -> None:
        allowed = self.worker.allowed_entitlements(ctx.job.entitlements)
        if self.exec.network == pb.HOST and "network.host" not in allowed:
            raise BuildError("network.host is not allowed",
                             hint="allow it with --allow network.host and insecure-entitlements in the builder config")
        if self.exec.security == pb.INSECURE and "security.insecure" not in allowed:
            raise BuildError("security.insecure is not allowed",
                             hint="allow it with --allow security.insecure and insecure-entitlements in the builder config")

    async def _writable(self, stack: contextlib.AsyncExitStack, mount: pb.Mount,
                        inputs: Sequence[Snapshot | None]) -> tuple[Path, ActiveLayer]:
        parent = inputs[mount.input] if mount.input >= 0 else None
        layer = await asyncio.to_thread(self.worker.snapshots.new_layer, parent)
        path = stack.enter_context(layer.mounted())
        return path, layer

    async def _mount(self, stack: contextlib.AsyncExitStack, ctx: OpContext, mount: pb.Mount,
                     inputs: Sequence[Snapshot | None], outputs: dict[int, ActiveLayer],
                     scratch: Path, env: list[str]):
        from pybuildkit.worker.executor import Mount

        worker = self.worker
        if mount.mountType == pb.TMPFS:
            options = ("size=" + str(mount.TmpfsOpt.size),) if mount.TmpfsOpt.size else ()
            return Mount(mount.dest, "tmpfs", None, False, options)
        if mount.mountType == pb.SECRET:
            data = await self._secret(ctx, mount.secretOpt.ID, mount.secretOpt.optional)
            if data is None:
                return None
            path = scratch / f"secret-{len(os.listdir(scratch))}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chown(path, mount.secretOpt.uid, mount.secretOpt.gid)
            os.chmod(path, mount.secretOpt.mode or 0o400)
            return Mount(mount.dest, "file", path, True)
        if mount.mountType == pb.SSH:
            provider = ctx.job.providers.ssh if ctx.job.providers else None
            sock = await maybe_await(provider.agent_socket(mount.SSHOpt.ID)) if provider else None
            if sock is None:
                if mount.SSHOpt.optional:
                    return None
                raise BuildError(f"no SSH key {mount.SSHOpt.ID or 'default'!r} forwarded from the client",
                                 hint="pass --ssh default (or --ssh ID=path)")
            env.append(f"SSH_AUTH_SOCK={mount.dest}")
            proxy = scratch / f"ssh-{len(os.listdir(scratch))}.sock"
            await stack.enter_async_context(agent_proxy(sock, proxy, uid=mount.SSHOpt.uid, gid=mount.SSHOpt.gid,
                                                        mode=mount.SSHOpt.mode or 0o600))
            return Mount(mount.dest, "socket", proxy, False)
        if mount.mountType == pb.CACHE:
            source = inputs[mount.input] if mount.input >= 0 else None
            path, created = await stack.enter_async_context(
                worker.cache_mounts.acquire(mount.cacheOpt.ID or mount.dest, mount.cacheOpt.sharing))
            if created and source is not None:
                with worker.snapshots.view(source) as view:
                    src = _under(view, mount.selector)
                    await asyncio.to_thread(shutil.copytree, src, path, symlinks=True, dirs_exist_ok=True)
                    st = os.stat(src)
                    os.chown(path, st.st_uid, st.st_gid)
                    os.chmod(path, st.st_mode & 0o7777)
            return Mount(mount.dest, "bind", path, mount.readonly)
        source = inputs[mount.input] if mount.input >= 0 else None
        if mount.readonly:
            view = stack.enter_context(worker.snapshots.view(source))
            return Mount(mount.dest, "bind", _under(view, mount.selector), True)
        path, layer = await self._writable(stack, mount, inputs)
        if mount.output >= 0:
            outputs[mount.output] = layer
        else:
            stack.callback(layer.discard)
        return Mount(mount.dest, "bind", _under(path, mount.selector), False)

    async def _secret(self, ctx: OpContext, secret_id: str, optional: bool) -> bytes | None:
        provider = ctx.job.providers.secrets if ctx.job.providers else None
        data = await maybe_await(provider.get_secret(secret_id)) if provider else None
        if data is None and not optional:
            raise BuildError(f"secret {secret_id}: not found",
                             hint=f"pass --secret id={secret_id},src=<file>")
        return data


def _proxy_env(meta: pb.Meta) -> list[str]:
    """Proxy settings as both spellings, as BuildKit passes them; they stay out of cache keys."""
    if not meta.HasField("proxy_env"):
        return []
    out = []
    for field in ("http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"):
        value = getattr(meta.proxy_env, field)
        if value:
            out += [f"{field.upper()}={value}", f"{field}={value}"]
    return out


def _under(root: Path, selector: str) -> Path:
    if not selector or selector in ("/", "."):
        return root
    candidate = (root / selector.lstrip("/")).resolve()
    if not str(candidate).startswith(str(root.resolve())):
        raise BuildError(f"mount selector {selector} escapes its source")
    return candidate


def _missing_targets(rootfs: Path, targets: list[str]) -> list[Path]:
    """Mount targets that do not exist yet: the runtime creates stubs for them, which must not
    end up in the layer (BuildKit removes mount stubs the same way)."""
    missing: list[Path] = []
    for target in targets:
        parts = [p for p in target.split("/") if p]
        current = rootfs
        for part in parts:
            current = current / part
            if not os.path.lexists(current):
                missing.append(current)
                break
    return missing


def _remove_stubs(rootfs: Path, stubs: list[Path]) -> None:
    for stub in stubs:
        with contextlib.suppress(OSError):
            if stub.is_dir() and not stub.is_symlink():
                _remove_empty_tree(stub)
            elif stub.is_file() and stub.stat().st_size == 0:
                stub.unlink()


def _remove_empty_tree(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            _remove_empty_tree(child)
        elif child.is_file() and child.stat().st_size == 0:
            child.unlink()
    path.rmdir()
