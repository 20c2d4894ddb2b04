"""git:// and http(s):// sources."""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.scheduler import CacheMap, OpContext
from pybuildkit.worker.process import run_async
from pybuildkit.worker.registry.httpclient import httpx
from pybuildkit.worker.snapshot.store import Snapshot

if TYPE_CHECKING:
    from pybuildkit.worker.worker import Worker


def _key(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class GitSource:
    """Clones with the `git` command; keyed by the commit the ref resolves to."""

    def __init__(self, worker: "Worker", op: pb.Op) -> None:
        self.worker = worker
        ident = op.source.identifier.removeprefix("git://")
        remote, _, fragment = ident.partition("#")
        self.ref, _, self.subdir = fragment.partition(":")
        attrs = op.source.attrs
        self.url = attrs.get("git.fullurl") or ("https://" + remote)
        self.keep_git_dir = attrs.get("git.keepgitdir") == "true"
        self.commit = ""

    async def cache_map(self, ctx: OpContext, inputs: Sequence[object]) -> CacheMap:
        ref = self.ref or "HEAD"
        if len(ref) == 40 and all(c in "0123456789abcdef" for c in ref):
            self.commit = ref
        else:
            _, out, _ = await run_async(["git", "ls-remote", self.url, ref], env=_git_env())
            lines = [line.split() for line in out.decode().splitlines() if line.strip()]
            preferred = [l for l in lines if l[1] in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}",
                                                        f"refs/tags/{ref}")]
            chosen = (preferred or lines)
            if not chosen:
                raise BuildError(f"git: ref {ref!r} not found in {self.url}")
            peeled = [l for l in chosen if l[1].endswith("^{}")]
            self.commit = (peeled or chosen)[0][0]
        return CacheMap(_key("git", self.commit, self.subdir, str(self.keep_git_dir)))

    async def execute(self, ctx: OpContext, inputs: Sequence[object]) -> list[Snapshot]:
        work = Path(tempfile.mkdtemp(prefix="git-", dir=self.worker.run_dir))
        try:
            checkout = work / "checkout"
            checkout.mkdir()
            env = _git_env()
            await run_async(["git", "init", "-q", str(checkout)], env=env)
            await run_async(["git", "-C", str(checkout), "remote", "add", "origin", self.url], env=env)
            fetch_ref = self.commit if not self.ref or self.ref == self.commit else self.ref
            code, _, _ = await run_async(["git", "-C", str(checkout), "fetch", "-q", "--depth=1", "origin",
                                          fetch_ref], env=env, check=False)
            if code != 0:
                await run_async(["git", "-C", str(checkout), "fetch", "-q", "origin"], env=env)
            await run_async(["git", "-C", str(checkout), "checkout", "-q", self.commit], env=env)
            await run_async(["git", "-C", str(checkout), "submodule", "update", "--init", "--recursive",
                             "--depth=1"], env=env, check=False)
            if not self.keep_git_dir:
                shutil.rmtree(checkout / ".git", ignore_errors=True)
            source = checkout
            if self.subdir:
                source = (checkout / self.subdir.strip("/")).resolve()
                if not str(source).startswith(str(checkout.resolve())) or not source.is_dir():
                    raise BuildError(f"git: subdir {self.subdir!r} not found in {self.url}")
            snap = await asyncio.to_thread(self.worker.snapshots.import_directory, source, None,
                                           description=f"git {self.url}#{self.ref}",
                                           record_type="source.git.checkout", move=True)
            return [snap]
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
    return env


class HTTPSource:
    """Downloads a URL into a one-file snapshot; keyed by the content digest."""

    def __init__(self, worker: "Worker", op: pb.Op) -> None:
        self.worker = worker
        self.url = op.source.identifier
        attrs = op.source.attrs
        self.checksum = attrs.get("http.checksum", "")
        name = attrs.get("http.filename") or os.path.basename(unquote(urlparse(self.url).path)) or "index"
        self.filename = name
        self.perm = int(attrs["http.perm"], 8) if attrs.get("http.perm") else 0o600
        self.uid = int(attrs.get("http.uid", "0"))
        self.gid = int(attrs.get("http.gid", "0"))
        self.downloaded: Path | None = None
        self.work: Path | None = None

    async def cache_map(self, ctx: OpContext, inputs: Sequence[object]) -> CacheMap:
        self.work = Path(tempfile.mkdtemp(prefix="http-", dir=self.worker.run_dir))
        target = self.work / "out"
        target.mkdir()
        path = target / self.filename
        hasher = hashlib.sha256()
        try:
            async with httpx.AsyncClient(follow_redirects=True, timeout=60) as client:
                async with client.stream("GET", self.url) as response:
                    if response.status_code >= 400:
                        raise BuildError(f"invalid response status {response.status_code} from {self.url}")
                    with open(path, "wb") as handle:
                        async for chunk in response.aiter_bytes(1 << 20):
                            hasher.update(chunk)
                            handle.write(chunk)
        except httpx.HTTPError as exc:
            raise BuildError(f"failed to download {self.url}: {exc}") from exc
        digest = "sha256:" + hasher.hexdigest()
        if self.checksum and self.checksum != digest:
            raise BuildError(f"digest mismatch {digest}: {self.checksum}")
        os.chmod(path, self.perm)
        os.chown(path, self.uid, self.gid)
        os.utime(path, (0, 0))
        self.downloaded = target
        return CacheMap(_key("http", digest, self.filename, oct(self.perm), str(self.uid), str(self.gid)))

    async def execute(self, ctx: OpContext, inputs: Sequence[object]) -> list[Snapshot]:
        assert self.downloaded is not None and self.work is not None
        try:
            snap = await asyncio.to_thread(self.worker.snapshots.import_directory, self.downloaded, None,
                                           description=f"http {self.url}", move=True)
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
        return [snap]
