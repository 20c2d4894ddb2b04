"""The snapshot store: immutable stacks of layer directories and writable layers on top.

A snapshot is an ordered list of layer ids (bottom first). With overlayfs a layer directory
holds only that layer's changes (the overlay upper dir, with whiteouts as 0:0 char devices),
so exporting a layer reads exactly its changes, merge is list concatenation and most diffs are
list slices. The native driver stores a full tree per layer instead (a copy of its parent plus
the step's changes); exports then diff a layer against its parent's tree.

Metadata is SQLite in WAL mode; a layer directory becomes visible only when its row is
committed, and `check()` removes directories that a crash left without a row.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.process import run
from pybuildkit.worker.snapshot import mount as m

_SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (id TEXT PRIMARY KEY, parent TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY, layers TEXT NOT NULL, created REAL NOT NULL,
    description TEXT NOT NULL DEFAULT '', record_type TEXT NOT NULL DEFAULT 'regular',
    last_used REAL NOT NULL
);
"""


class Driver(StrEnum):
    OVERLAY = "overlayfs"
    FUSE_OVERLAY = "fuse-overlayfs"
    NATIVE = "native"


@dataclass(frozen=True)
class Snapshot:
    id: str
    layers: tuple[str, ...]  # bottom first
    description: str = ""
    record_type: str = "regular"

    @property
    def top(self) -> str | None:
        return self.layers[-1] if self.layers else None


class SnapshotError(BuildError):
    pass


def _new_id() -> str:
    return secrets.token_hex(6)


def in_user_namespace() -> bool:
    try:
        first = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    return len(first) >= 3 and not (first[0] == "0" and first[1] == "0")


class SnapshotStore:
    def __init__(self, root: Path, *, driver: str = "auto", log: Callable[[str], None] | None = None) -> None:
        self.root = root
        self.layers_dir = root / "layers"
        self.work_dir = root / "work"
        self.mounts_dir = root / "mounts"
        for d in (self.layers_dir, self.work_dir, self.mounts_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(root / "snapshots.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.userxattr = in_user_namespace()
        self._log = log or (lambda _msg: None)
        self.driver = self._choose_driver(driver)

    # ------------------------------------------------------------------ driver

    def _choose_driver(self, wanted: str) -> Driver:
        if wanted not in ("auto", "", None):
            driver = Driver(wanted)
            self._log(f"snapshotter: {driver} (configured)")
            return driver
        for candidate in (Driver.OVERLAY, Driver.FUSE_OVERLAY):
            reason = self._probe(candidate)
            if reason is None:
                self._log(f"snapshotter: {candidate}")
                return candidate
            self._log(f"snapshotter: {candidate} unavailable ({reason})")
        self._log("snapshotter: native (copies each layer; slower)")
        return Driver.NATIVE

    def _probe(self, driver: Driver) -> str | None:
        probe = self.work_dir / f"probe-{_new_id()}"
        lower, upper, work, target = (probe / n for n in ("l", "u", "w", "m"))
        for d in (lower, upper, work, target):
            d.mkdir(parents=True)
        (lower / "f").write_text("x")
        try:
            self._mount_overlay(driver, [lower], upper, work, target)
            try:
                (target / "f").unlink()  # makes a whiteout: proves the upper layer works
            finally:
                self._unmount(driver, target)
            return None
        except BuildError as exc:
            return str(exc)
        finally:
            shutil.rmtree(probe, ignore_errors=True)

    def _mount_overlay(self, driver: Driver, lowers: list[Path], upper: Path | None,
                       work: Path | None, target: Path) -> None:
        top_first = list(reversed(lowers))
        if driver == Driver.OVERLAY:
            if upper is None and len(top_first) == 1:
                m.bind(top_first[0], target, readonly=True)
                return
            opts = m.overlay_options(top_first, upper, work, userxattr=self.userxattr)
            m.mount("overlay", target, "overlay", 0, opts)
        elif driver == Driver.FUSE_OVERLAY:
            opts = "lowerdir=" + ":".join(str(p) for p in top_first)
            if upper is not None:
                opts += f",upperdir={upper},workdir={work}"
            run(["fuse-overlayfs", "-o", opts, str(target)])
        else:
            raise SnapshotError("native snapshots are not mounted")

    def _unmount(self, driver: Driver, target: Path) -> None:
        if driver == Driver.FUSE_OVERLAY:
            run(["fusermount3", "-u", str(target)], check=False)
            return
        m.umount(target)

    # ------------------------------------------------------------------ metadata

    def layer_path(self, layer_id: str) -> Path:
        return self.layers_dir / layer_id

    def get(self, snapshot_id: str) -> Snapshot | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, layers, description, record_type FROM snapshots WHERE id=?", (snapshot_id,)).fetchone()
        if row is None:
            return None
        return Snapshot(row[0], tuple(json.loads(row[1])), row[2], row[3])

    def exists(self, snapshot_id: str) -> bool:
        return self.get(snapshot_id) is not None

    def create(self, layers: tuple[str, ...], *, description: str = "", record_type: str = "regular") -> Snapshot:
        snap = Snapshot(_new_id(), layers, description, record_type)
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO snapshots(id, layers, created, description, record_type, last_used) VALUES (?,?,?,?,?,?)",
                (snap.id, json.dumps(list(layers)), now, description, record_type, now))
        return snap

    def all(self) -> list[Snapshot]:
        with self._lock:
            rows = self._db.execute("SELECT id, layers, description, record_type FROM snapshots").fetchall()
        return [Snapshot(r[0], tuple(json.loads(r[1])), r[2], r[3]) for r in rows]

    def usage_rows(self) -> list[tuple[Snapshot, float, float]]:
        """Every snapshot with its creation and last-use times (for du, prune and GC)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, layers, description, record_type, created, last_used FROM snapshots").fetchall()
        return [(Snapshot(r[0], tuple(json.loads(r[1])), r[2], r[3]), r[4], r[5]) for r in rows]

    def touch(self, snapshot_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE snapshots SET last_used=? WHERE id=?", (time.time(), snapshot_id))

    def layer_parent(self, layer_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT parent FROM layers WHERE id=?", (layer_id,)).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ writable layers

    def new_layer(self, parent: Snapshot | None) -> "ActiveLayer":
        layer_id = _new_id()
        path = self.layer_path(layer_id + ".tmp")
        path.mkdir()
        os.chmod(path, 0o755)
        if self.driver == Driver.NATIVE and parent is not None and parent.layers:
            run(["cp", "-a", "--reflink=auto", f"{self.layer_path(parent.layers[-1])}/.", str(path)])
        return ActiveLayer(self, layer_id, path, parent)

    def _commit_layer(self, layer: "ActiveLayer", description: str, record_type: str) -> Snapshot:
        final = self.layer_path(layer.id)
        os.rename(layer.path, final)
        parent_top = layer.parent.top if layer.parent is not None else None
        with self._lock:
            self._db.execute("INSERT INTO layers(id, parent, created) VALUES (?,?,?)",
                             (layer.id, parent_top, time.time()))
        base = layer.parent.layers if layer.parent is not None else ()
        layers = (layer.id,) if self.driver == Driver.NATIVE else base + (layer.id,)
        return self.create(layers, description=description, record_type=record_type)

    def import_directory(self, source: Path, parent: Snapshot | None, *, description: str = "",
                         record_type: str = "regular", move: bool = False, hardlink: bool = False) -> Snapshot:
        """Commit a prepared directory as a new layer (image layers, local sources).

        `hardlink` shares file inodes with `source`; only for sources that replace files by
        renaming instead of rewriting them (the local-source mirror does), since a layer must
        never change afterwards.
        """
        layer = self.new_layer(parent)
        if move:
            layer.path.rmdir()
            os.rename(source, layer.path)
        else:
            run(["cp", "-a", "--link" if hardlink else "--reflink=auto", f"{source}/.", str(layer.path)])
        return layer.commit(description=description, record_type=record_type)

    # ------------------------------------------------------------------ views

    @contextlib.contextmanager
    def view(self, snapshot: Snapshot | None) -> Iterator[Path]:
        """A read-only path showing the snapshot's merged tree."""
        if snapshot is None or not snapshot.layers:
            empty = self.mounts_dir / f"empty-{_new_id()}"
            empty.mkdir()
            try:
                yield empty
            finally:
                empty.rmdir()
            return
        if len(snapshot.layers) == 1 or self.driver == Driver.NATIVE:
            yield self.layer_path(snapshot.layers[-1])
            return
        target = self.mounts_dir / _new_id()
        target.mkdir()
        try:
            self._mount_overlay(self.driver, [self.layer_path(l) for l in snapshot.layers], None, None, target)
            try:
                yield target
            finally:
                self._unmount(self.driver, target)
        finally:
            target.rmdir()

    def merge(self, snapshots: list[Snapshot], *, description: str = "") -> Snapshot:
        if self.driver != Driver.NATIVE:
            layers: list[str] = []
            for snap in snapshots:
                layers.extend(snap.layers)
            return self.create(tuple(layers), description=description)
        layer = self.new_layer(snapshots[0] if snapshots else None)
        for snap in snapshots[1:]:
            run(["cp", "-a", "--reflink=auto", f"{self.layer_path(snap.layers[-1])}/.", str(layer.path)])
        return layer.commit(description=description)

    # ------------------------------------------------------------------ consistency

    def check(self) -> list[str]:
        """After a crash: drop half-written layers and snapshots pointing at missing layers."""
        notes: list[str] = []
        with self._lock:
            known = {r[0] for r in self._db.execute("SELECT id FROM layers")}
        for entry in self.layers_dir.iterdir():
            if entry.name not in known:
                _force_remove(entry)
                notes.append(f"removed unfinished layer {entry.name}")
        for entry in list(self.work_dir.iterdir()) + list(self.mounts_dir.iterdir()):
            with contextlib.suppress(BuildError):
                m.umount(entry, lazy=True)
            _force_remove(entry)
        for snap in self.all():
            if any(layer not in known or not self.layer_path(layer).is_dir() for layer in snap.layers):
                with self._lock:
                    self._db.execute("DELETE FROM snapshots WHERE id=?", (snap.id,))
                notes.append(f"dropped snapshot {snap.id} with a missing layer")
        return notes

    def remove_snapshot(self, snapshot_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM snapshots WHERE id=?", (snapshot_id,))

    def remove_unreferenced_layers(self) -> int:
        used = {layer for snap in self.all() for layer in snap.layers}
        removed = 0
        with self._lock:
            rows = [r[0] for r in self._db.execute("SELECT id FROM layers")]
        for layer_id in rows:
            if layer_id not in used:
                with self._lock:
                    self._db.execute("DELETE FROM layers WHERE id=?", (layer_id,))
                _force_remove(self.layer_path(layer_id))
                removed += 1
        return removed

    def close(self) -> None:
        self._db.close()


def _force_remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            run(["rm", "-rf", "--one-file-system", str(path)], check=False)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class ActiveLayer:
    """A writable layer over a parent snapshot; `mounted()` gives the merged rw tree."""

    def __init__(self, store: SnapshotStore, layer_id: str, path: Path, parent: Snapshot | None) -> None:
        self.store = store
        self.id = layer_id
        self.path = path
        self.parent = parent
        self._target: Path | None = None
        self._work: Path | None = None

    @contextlib.contextmanager
    def mounted(self) -> Iterator[Path]:
        store = self.store
        if store.driver == Driver.NATIVE or self.parent is None or not self.parent.layers:
            yield self.path
            return
        work = store.work_dir / self.id
        target = store.mounts_dir / self.id
        work.mkdir(exist_ok=True)
        target.mkdir(exist_ok=True)
        store._mount_overlay(store.driver, [store.layer_path(l) for l in self.parent.layers],
                             self.path, work, target)
        try:
            yield target
        finally:
            store._unmount(store.driver, target)
            target.rmdir()
            shutil.rmtree(work, ignore_errors=True)

    def commit(self, *, description: str = "", record_type: str = "regular") -> Snapshot:
        return self.store._commit_layer(self, description, record_type)

    def discard(self) -> None:
        _force_remove(self.path)
