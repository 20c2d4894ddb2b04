"""The OCI worker: owns the stores on disk, the executor and the registry client, and maps each
LLB op to its implementation. The solver sees it only through `op_for`, `content_checksum` and
`load_result`."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pybuildkit.solver.cachestore import CacheStore
from pybuildkit.solver.definition import Vertex
from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.platforms import Platform, host_platform
from pybuildkit.solver.scheduler import Dep, Job, OpContext
from pybuildkit.worker.metadata import MetadataStore
from pybuildkit.worker.mirrorstate import MirrorState, save_states
from pybuildkit.worker.providers import LocalSyncRequest
from pybuildkit.worker.recovery import recover, unmount_under
from pybuildkit.worker.snapshot.store import Driver, Snapshot, SnapshotStore


#: how long an image reference stays resolved: one build reads it many times, the next one
#: must see a tag that moved meanwhile
RESOLVE_TTL = 10.0
RESOLVED_KEPT = 256  # resolutions kept before the expired ones are dropped
CONTENT_SUMS_KEPT = 4096  # content_checksum results kept in memory
CLAIMS_FILE = "link-claims"  # ChecksumCache's pending link claims, from one daemon to the next


@dataclass(frozen=True)
class WorkerConfig:
    root: Path
    snapshotter: str = "auto"
    binary: str | None = None
    max_parallelism: int = field(default_factory=lambda: os.cpu_count() or 2)
    insecure_entitlements: tuple[str, ...] = ()
    registries: Mapping[str, object] = field(default_factory=dict)  # host -> RegistryHostConfig
    platform: Platform = field(default_factory=host_platform)
    cgroup_parent: str | None = None  # the daemon's delegated cgroup (appliance/systemd/cgroup.py)


def _content_digest(selector_checksums: list[str]) -> str:
    """What content_checksum makes of the checksums of a dep's selectors."""
    return "sha256:" + hashlib.sha256("\x00".join(selector_checksums).encode()).hexdigest()


class Worker:
    def __init__(self, config: WorkerConfig, *, log: Callable[[str], None] | None = None) -> None:
        from pybuildkit.worker.content.store import ContentStore
        from pybuildkit.worker.contenthash import ChecksumCache
        from pybuildkit.worker.contenthash.claims import load_claims
        from pybuildkit.worker.executor import Executor
        from pybuildkit.worker.cachemounts import CacheMounts

        self.config = config
        self.log = log or (lambda _m: None)
        root = config.root
        root.mkdir(parents=True, exist_ok=True)
        self.platform = config.platform
        self.run_dir = root / "run"
        unmount_under(self.run_dir)  # never let rmtree walk into a mount a dead predecessor left
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(mode=0o700)
        self.content = ContentStore(root / "content")
        self.snapshots = SnapshotStore(root / "snapshots", driver=config.snapshotter, log=self.log)
        self.cache = CacheStore(root / "cache.db")
        self.meta = MetadataStore(root / "worker.db")
        self.cache_mounts = CacheMounts(root / "cachemounts")
        self.executor = Executor(root / "executor", binary=config.binary, log=self.log,
                                 cgroup_parent=config.cgroup_parent)
        self.checksums = ChecksumCache(load=lambda: (self.meta.file_digests(), load_claims(root / CLAIMS_FILE)))
        self._content_sums: dict[tuple[object, ...], str] = {}  # content_checksum's memo
        #: local mirror -> what its last sync brought it to (worker/ops/source_local.py)
        self.mirror_sums: dict[Path, MirrorState] = {}
        self._local_locks: dict[Path, asyncio.Lock] = {}
        self._registry = None
        self._resolved: dict[tuple[str, str, str], tuple[float, object]] = {}
        self._unpack_locks: dict[str, asyncio.Lock] = {}

    # -- start-up and consistency ------------------------------------------------------------

    def check(self) -> list[str]:
        """Bring the root back to a consistent state after a crash: first reap what a killed
        predecessor left running or mounted (worker/recovery.py), then let each store repair
        itself. Logs one line of what was removed."""
        reaped = recover(self.config.root, runtime_roots=[self.executor.runtime_root],
                         bundles=[self.executor.bundles], scratch=[self.run_dir])
        notes = self.snapshots.check()
        report = self.content.check(repair=True)
        notes.extend(getattr(report, "notes", []) or [])
        dropped = self.cache.drop_dangling(self.snapshots.exists)
        if dropped:
            notes.append(f"dropped {dropped} cache records without a snapshot")
        if not reaped.empty or notes:
            extra = f", {len(notes)} store repairs ({'; '.join(notes)[:300]})" if notes else ""
            self.log(f"recovered {self.config.root}: removed {reaped.summary()}{extra}")
        return [f"removed {reaped.summary()}"] * (not reaped.empty) + notes

    def close(self) -> None:
        save_states(self.mirror_sums, {mirror: tree for mirror in self.mirror_sums
                                       if (tree := self.checksums.kept_tree(mirror)) is not None})
        if self.checksums.loaded:  # else the memo and the claims on disk are as they were
            from pybuildkit.worker.contenthash.claims import save_claims

            self.meta.save_file_digests({**self.checksums.fresh(), **self.checksums.carried_over()})
            save_claims(self.config.root / CLAIMS_FILE, self.checksums.pending_claims())
        self.snapshots.close()
        self.cache.close()
        self.meta.close()

    async def aclose(self) -> None:
        if self._registry is not None:
            await self._registry.aclose()
        self.close()

    # -- the solver's protocol -----------------------------------------------------------------

    def op_for(self, vertex: Vertex):
        from pybuildkit.worker.ops.exec_op import ExecOp
        from pybuildkit.worker.ops.file_op import FileOp
        from pybuildkit.worker.ops.merge_diff import DiffOp, MergeOp
        from pybuildkit.worker.ops.source_image import ImageSource
        from pybuildkit.worker.ops.source_local import LocalSource
        from pybuildkit.worker.ops.source_remote import GitSource, HTTPSource

        op = vertex.op
        kind = vertex.kind
        if kind == "exec":
            return ExecOp(self, op)
        if kind == "file":
            return FileOp(self, op)
        if kind == "merge":
            return MergeOp(self, op)
        if kind == "diff":
            return DiffOp(self, op)
        if kind == "source":
            identifier = op.source.identifier
            scheme = identifier.split("://", 1)[0]
            if scheme == "docker-image":
                return ImageSource(self, op)
            if scheme == "local":
                return LocalSource(self, op)
            if scheme == "git":
                return GitSource(self, op)
            if scheme in ("http", "https"):
                return HTTPSource(self, op)
            if scheme == "oci-layout":
                from pybuildkit.worker.ops.source_oci import OCILayoutSource

                return OCILayoutSource(self, op)
            raise BuildError(f"unsupported source {identifier!r}",
                             hint="supported: docker-image://, oci-layout://, local://, git://, http(s)://")
        raise BuildError(f"unsupported op type {kind!r}")

    async def content_checksum(self, result: Snapshot | None, dep: Dep) -> str:
        # a snapshot's layers never change, so neither does what a selector of it sums to: a
        # no-op rebuild of a big context does not walk its 20,000 files again for every COPY
        memo_key = (result.layers if result is not None else (), dep.selectors, dep.wildcard, dep.follow_links)
        if (known := self._content_sums.get(memo_key)) is not None:
            return known

        def compute() -> str:
            with self.snapshots.view(result) as view:
                parts = []
                for selector in dep.selectors or ("/",):
                    parts.append(self.checksums.checksum(view, selector, wildcard=dep.wildcard,
                                                         follow_links=dep.follow_links))
                return _content_digest(parts)

        digest = await asyncio.to_thread(compute)
        await asyncio.to_thread(self.meta.save_file_digests, self.checksums.fresh())
        if len(self._content_sums) >= CONTENT_SUMS_KEPT:
            self._content_sums.clear()
        self._content_sums[memo_key] = digest
        return digest

    def same_tree_as(self, result: Snapshot, root_checksum: str) -> None:
        """`result` holds a tree whose checksum at "/" is known (a local source's snapshot, a
        hardlinked copy of the mirror just checksummed): what content_checksum would walk
        20,000 files to find for a COPY of all of it."""
        digest = _content_digest([root_checksum])
        for wildcard in (False, True):  # "/" has no wildcard and is no link: the flags do not matter
            for follow in (False, True):
                self._content_sums[(result.layers, ("/",), wildcard, follow)] = digest

    def load_result(self, result_id: str) -> Snapshot | None:
        return self.snapshots.get(result_id)

    def allowed_entitlements(self, requested: Iterable[str]) -> set[str]:
        return set(requested) & set(self.config.insecure_entitlements)

    # -- images --------------------------------------------------------------------------------

    @property
    def registry(self):
        if self._registry is None:
            from pybuildkit.worker.registry.auth import DockerConfigCredentials
            from pybuildkit.worker.registry.client import RegistryClient
            from pybuildkit.worker.registry.hosts import RegistryHosts

            self._registry = RegistryClient(RegistryHosts(dict(self.config.registries)),
                                            DockerConfigCredentials(), self.content)
        return self._registry

    async def resolve_image(self, ref: str, platform: Platform, job: Job | None = None):
        from pybuildkit.worker.registry.reference import parse_reference

        from pybuildkit.worker.registry.client import _credential_owner

        reference = parse_reference(ref)
        # per client (credentials decide what may be seen) and short-lived (tags move)
        owner, shown = _credential_owner(), str(platform)
        now = time.monotonic()
        cached = self._resolved.get((str(reference), shown, owner))
        if cached is not None and now - cached[0] < RESOLVE_TTL:
            return cached[1]
        resolved = self.local_image(reference, platform) or await self.registry.resolve(reference, platform)
        if len(self._resolved) >= RESOLVED_KEPT:  # every session adds keys of its own
            self._resolved = {k: v for k, v in self._resolved.items() if now - v[0] < RESOLVE_TTL}
        self._resolved[(str(reference), shown, owner)] = (now, resolved)
        # the frontend resolves the tag and writes `tag@digest` into the LLB, which the image
        # source then resolves: the same content for the same client, without a second request
        pinned = str(reference.with_digest(resolved.root_digest))
        self._resolved[(pinned, shown, owner)] = (now, resolved)
        return resolved

    def store_image(self, name: str, root) -> None:
        """Remember an exported image by name (`type=image` without push), as BuildKit's image store."""
        from pybuildkit.worker.registry.reference import parse_reference

        self.meta.put("image:" + str(parse_reference(name).with_digest(None)), json.dumps(root.to_json()))

    def local_image(self, reference, platform: Platform):
        """An image this builder exported under that name, resolved for the platform, or None."""
        from pybuildkit.worker.content.store import Descriptor
        from pybuildkit.worker.registry.client import ResolvedImage, _matches

        stored = self.meta.get("image:" + str(reference.with_digest(None)))
        if stored is None:
            return None
        root = Descriptor.from_json(json.loads(stored))
        if reference.digest and reference.digest != root.digest:
            return None
        if not self.content.has(root.digest):
            return None
        doc = json.loads(self.content.read_bytes(root.digest))
        manifest_digest, manifest = root.digest, doc
        if "manifests" in doc:
            ranked = sorted(doc["manifests"], key=lambda m: -_matches(m.get("platform", {}), platform))
            if not ranked or not _matches(ranked[0].get("platform", {}), platform):
                return None
            manifest_digest = ranked[0]["digest"]
            manifest = json.loads(self.content.read_bytes(manifest_digest))
        config_digest = manifest["config"]["digest"]
        config = json.loads(self.content.read_bytes(config_digest))
        layers = [Descriptor.from_json(layer) for layer in manifest.get("layers", [])]
        return ResolvedImage(reference, root.digest, manifest_digest, manifest, config, config_digest, layers,
                             manifest.get("mediaType", ""))

    async def unpack_image(self, resolved, ctx: OpContext | None) -> Snapshot:
        from pybuildkit.worker.ops.source_image import chain_ids, fetch_layers

        diff_ids = resolved.config.get("rootfs", {}).get("diff_ids", [])
        chain = chain_ids(diff_ids)
        if len(chain) != len(resolved.layers):
            raise BuildError(f"image {resolved.ref}: {len(resolved.layers)} layers but "
                             f"{len(diff_ids)} diff_ids in its config")
        top = chain[-1] if chain else "scratch"
        lock = self._unpack_locks.setdefault(top, asyncio.Lock())
        async with lock:
            found = self._layer_snapshot(top)
            if found is not None:
                return found
            await fetch_layers(self, resolved, ctx)
            parent: Snapshot | None = None
            for chain_id, diff_id, desc in zip(chain, diff_ids, resolved.layers):
                existing = self._layer_snapshot(chain_id)
                if existing is not None:
                    parent = existing
                    continue
                parent = await asyncio.to_thread(self._apply_layer, parent, desc, chain_id, diff_id)
            if parent is None:
                parent = self.snapshots.create((), description=f"image {resolved.ref} (empty)")
            return parent

    def _layer_snapshot(self, chain_id: str) -> Snapshot | None:
        snap_id = self.meta.get("layerchain:" + chain_id)
        return self.snapshots.get(snap_id) if snap_id else None

    def _apply_layer(self, parent: Snapshot | None, desc, chain_id: str, diff_id: str) -> Snapshot:
        from pybuildkit.worker.compression import decompress_reader
        from pybuildkit.worker.layer.unpack import apply_layer

        layer = self.snapshots.new_layer(parent)
        try:
            with self.content.open(desc.digest) as blob:
                stream = decompress_reader(blob, desc.media_type)
                mode = "overlay" if self.snapshots.driver != Driver.NATIVE else "delete"
                apply_layer(stream, layer.path, whiteout_mode=mode)
        except BaseException:
            layer.discard()
            raise
        snap = layer.commit(description=f"image layer {desc.digest}", record_type="regular")
        from pybuildkit.worker.exporters.layers import LayerExporter

        self.meta.put("layerblob:" + snap.layers[-1], desc.digest)
        LayerExporter(self).register_pulled(snap.layers[-1], desc, diff_id)
        self.meta.put("layerchain:" + chain_id, snap.id)
        return snap

    # -- local sources -------------------------------------------------------------------------

    def local_mirror(self, shared_key: str, request: LocalSyncRequest) -> Path:
        digest = hashlib.sha256(repr((shared_key, request)).encode()).hexdigest()[:24]
        path = self.config.root / "local" / digest
        path.mkdir(parents=True, exist_ok=True)
        return path

    def local_lock(self, path: Path) -> asyncio.Lock:
        return self._local_locks.setdefault(path, asyncio.Lock())
