"""Disk usage, prune and garbage collection over the worker's snapshots (BUILDKIT-FACTS §9).

A record is a snapshot; its size is what its own top layer takes on disk (lower layers are
counted by the records that created them), and it is `shared` when another record builds on
the same layer. Layers are immutable, so their sizes are computed once and remembered.
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pybuildkit.appliance.gcpolicy import GCPolicyConfig
from pybuildkit.solver.errors import BuildError
from pybuildkit.worker import process
from pybuildkit.worker.snapshot.store import Snapshot
from pybuildkit.worker.worker import Worker

FILTER_FIELDS = ("id", "type", "description", "shared", "private", "inuse", "mutable")


@dataclass
class UsageInfo:
    snapshot: Snapshot
    size: int
    created: float
    last_used: float
    shared: bool
    in_use: bool

    @property
    def record_type(self) -> str:
        return self.snapshot.record_type or "regular"


@dataclass(frozen=True)
class Policy:
    """One GC or prune rule; sizes in bytes, durations in seconds, 0 = unset."""

    all: bool = False
    filters: tuple[str, ...] = ()
    keep_duration: float = 0
    reserved_space: int = 0
    max_used_space: int = 0
    min_free_space: int = 0


def configured_policies(configs: Sequence[GCPolicyConfig], root: Path) -> list[Policy]:
    """`[[worker.oci.gcpolicy]]` with percentages taken of the root's disk."""
    try:
        total = shutil.disk_usage(root).total
    except OSError:
        total = 0
    return [Policy(all=c.all, filters=c.filters, keep_duration=c.keep_duration,
                   reserved_space=c.reserved_space.of(total), max_used_space=c.max_used_space.of(total),
                   min_free_space=c.min_free_space.of(total)) for c in configs]


def default_policies(root: Path) -> list[Policy]:
    """BuildKit's DefaultGCPolicy with the space limits from the root's filesystem."""
    try:
        total = shutil.disk_usage(root).total
    except OSError:
        total = 0
    gb = 1_000_000_000
    reserved = min(total // 10, 10 * gb) if total else 2 * gb
    max_used = min(total * 8 // 10, 100 * gb) if total else 2 * gb
    min_free = total // 5 if total else 2 * gb
    cleanup = ("type==source.local", "type==exec.cachemount", "type==source.git.checkout")
    return [
        Policy(filters=cleanup, keep_duration=48 * 3600, max_used_space=512_000_000),
        Policy(keep_duration=60 * 86400, reserved_space=reserved, max_used_space=max_used, min_free_space=min_free),
        Policy(reserved_space=reserved, max_used_space=max_used, min_free_space=min_free),
        Policy(all=True, reserved_space=reserved, max_used_space=max_used, min_free_space=min_free),
    ]


#: layers measured by one `du`
DU_BATCH = 256


def _tree_sizes(paths: Sequence[Path]) -> dict[Path, int]:
    """What each tree takes on disk, by `du` (blocks, hardlinks counted in every tree that has
    them). A subprocess, not a walk in Python: GC measures a 20,000-file layer after a build,
    and a walk would hold the interpreter lock for ~0.2 s inside the next build."""
    sizes: dict[Path, int] = {}
    for start in range(0, len(paths), DU_BATCH):
        batch = paths[start:start + DU_BATCH]
        proc = process.run(["du", "-s", "-l", "-B1", "-x", "--", *map(str, batch)], check=False)
        by_name = {str(p): p for p in batch}
        for line in proc.stdout.decode(errors="surrogateescape").splitlines():
            size, _, name = line.partition("\t")
            if name in by_name and size.isdigit():
                sizes[by_name[name]] = int(size)
    return sizes


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: str

    def matches(self, info: UsageInfo) -> bool:
        actual = {
            "id": info.snapshot.id, "type": info.record_type, "description": info.snapshot.description,
            "shared": str(info.shared).lower(), "private": str(not info.shared).lower(),
            "inuse": str(info.in_use).lower(), "mutable": "false",
        }[self.field]
        if self.op == "==":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        return self.value in actual  # ~=


def parse_filters(texts: Iterable[str]) -> list[Filter]:
    out: list[Filter] = []
    for text in texts:
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            for op in ("==", "!=", "~=", "="):
                if op in item:
                    key, _, value = item.partition(op)
                    key = key.strip().lower()
                    if key not in FILTER_FIELDS:
                        raise BuildError(f"invalid filter {item!r}: unknown field {key!r}",
                                         hint="fields: " + ", ".join(FILTER_FIELDS))
                    out.append(Filter(key, "==" if op == "=" else op, value.strip()))
                    break
            else:
                raise BuildError(f"invalid filter {item!r}: expected FIELD==VALUE, FIELD!=VALUE or FIELD~=VALUE")
    return out


class Usage:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._layer_sizes: dict[str, int] = {}

    def layer_size(self, layer_id: str) -> int:
        if layer_id not in self._layer_sizes:
            self._measure([layer_id])
        return self._layer_sizes.get(layer_id, 0)

    def _measure(self, layer_ids: Iterable[str]) -> None:
        paths = {self.worker.snapshots.layer_path(layer): layer for layer in layer_ids}
        if not paths:
            return
        sizes = _tree_sizes(list(paths))
        for path, layer in paths.items():
            if path in sizes:  # a layer du could not read is measured again next time
                self._layer_sizes[layer] = sizes[path]

    def records(self, *, busy_since: float | None = None) -> list[UsageInfo]:
        """`busy_since`: records used after this time may belong to a running build."""
        rows = self.worker.snapshots.usage_rows()
        users: dict[str, int] = {}
        for snap, _c, _u in rows:
            for layer in snap.layers:
                users[layer] = users.get(layer, 0) + 1
        self._measure({snap.top for snap, _c, _u in rows if snap.top and snap.top not in self._layer_sizes})
        out = []
        for snap, created, last_used in rows:
            top = snap.top
            size = self.layer_size(top) if top else 0
            shared = bool(top) and users.get(top or "", 0) > 1
            in_use = busy_since is not None and max(created, last_used) >= busy_since
            out.append(UsageInfo(snap, size, created, last_used, shared, in_use))
        out.sort(key=lambda i: i.last_used)
        return out

    def prune(self, policy: Policy, *, busy_since: float | None = None) -> list[UsageInfo]:
        """Delete what `policy` allows, oldest use first; returns the deleted records."""
        filters = parse_filters(policy.filters)
        records = self.records(busy_since=busy_since)
        total = sum(r.size for r in records)
        limit = self._space_limit(policy)
        now = time.time()
        removed: list[UsageInfo] = []
        for info in records:
            if limit is not None and total <= limit:
                break
            if info.in_use:
                continue
            if not policy.all and (info.shared or info.record_type in ("internal", "frontend")):
                continue
            if policy.keep_duration and now - info.last_used < policy.keep_duration:
                continue
            if not all(f.matches(info) for f in filters):
                continue
            self._delete(info.snapshot)
            total -= info.size
            removed.append(info)
        if removed:
            self.worker.snapshots.remove_unreferenced_layers()
            for info in removed:
                if info.snapshot.top:
                    self._layer_sizes.pop(info.snapshot.top, None)
        return removed

    def _space_limit(self, policy: Policy) -> int | None:
        """How many bytes may stay: under max-used-space and enough for min-free-space, but
        never below reserved-space; None when the policy sets no space limit (prune all)."""
        caps: list[int] = []
        if policy.max_used_space:
            caps.append(policy.max_used_space)
        if policy.min_free_space:
            try:
                free = shutil.disk_usage(self.worker.config.root).free
            except OSError:
                free = policy.min_free_space
            used = sum(r.size for r in self.records())
            caps.append(max(0, used - max(0, policy.min_free_space - free)))
        if not caps:
            return policy.reserved_space or None
        return max(min(caps), policy.reserved_space)

    def _delete(self, snapshot: Snapshot) -> None:
        self.worker.cache.delete_where_result(snapshot.id)
        self.worker.snapshots.remove_snapshot(snapshot.id)

    def gc(self, policies: Sequence[Policy], *, busy_since: float | None = None) -> int:
        return sum(len(self.prune(p, busy_since=busy_since)) for p in policies)
