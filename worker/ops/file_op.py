"""FileOp glue: runs the action chain on fresh layers over the input snapshots."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf import json_format

from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.scheduler import CacheMap, Dep, OpContext
from pybuildkit.worker.snapshot.store import ActiveLayer, Snapshot

if TYPE_CHECKING:
    from pybuildkit.worker.worker import Worker


class FileOp:
    def __init__(self, worker: "Worker", op: pb.Op) -> None:
        self.worker = worker
        self.op = op

    async def cache_map(self, ctx: OpContext, inputs: Sequence[object]) -> CacheMap:
        payload = json_format.MessageToJson(self.op.file, preserving_proto_field_name=True, sort_keys=True)
        digest = "sha256:" + hashlib.sha256(("file:" + payload).encode()).hexdigest()
        count = len(self.op.inputs)
        selectors: dict[int, list[str]] = {i: [] for i in range(count)}
        as_base: set[int] = set()
        wildcard: dict[int, bool] = {i: False for i in range(count)}
        follow: dict[int, bool] = {i: False for i in range(count)}
        for action in self.op.file.actions:
            if 0 <= action.input < count:
                as_base.add(action.input)
            if action.WhichOneof("action") == "copy" and 0 <= action.secondaryInput < count:
                idx = action.secondaryInput
                selectors[idx].append(posixpath.join("/", action.copy.src))
                wildcard[idx] = wildcard[idx] or action.copy.allowWildcard
                follow[idx] = follow[idx] or action.copy.followSymlink
        deps = []
        for idx in range(count):
            content = idx not in as_base and bool(selectors[idx])
            deps.append(Dep(tuple(sorted(set(selectors[idx]))), content, wildcard[idx], follow[idx]))
        return CacheMap(digest, tuple(deps))

    async def execute(self, ctx: OpContext, inputs: Sequence[Snapshot | None]) -> list[Snapshot]:
        return await asyncio.to_thread(self._run, list(inputs))

    def _run(self, inputs: list[Snapshot | None]) -> list[Snapshot]:
        from pybuildkit.worker.ops.fileops import run_file_actions

        store = self.worker.snapshots
        with contextlib.ExitStack() as views_stack:
            views: list[Path | None] = []
            by_path: dict[Path, Snapshot] = {}
            for snap in inputs:
                view = views_stack.enter_context(store.view(snap)) if snap is not None else None
                views.append(view)
                if view is not None and snap is not None:
                    by_path[view] = snap
            active: dict[Path, tuple[ActiveLayer, contextlib.ExitStack]] = {}

            def new_dir(base: Path | None) -> Path:
                if base is not None and base in active:
                    # chaining on an earlier action's result: copy it into a fresh root layer
                    layer = store.new_layer(None)
                    shutil.copytree(base, layer.path, symlinks=True, dirs_exist_ok=True)
                    layer_stack = contextlib.ExitStack()
                    active[layer.path] = (layer, layer_stack)
                    return layer.path
                layer = store.new_layer(by_path.get(base) if base is not None else None)
                layer_stack = contextlib.ExitStack()
                if base is not None and self._writes_new_top_level_entry(base):
                    path = layer.path  # the upper directory itself: see _writes_new_top_level_entry
                else:
                    path = layer_stack.enter_context(layer.mounted())
                active[path] = (layer, layer_stack)
                return path

            try:
                outputs = run_file_actions(self.op.file, views, new_dir, linkable=frozenset(by_path),
                                           linked=self.worker.checksums.relinked)
                results: list[Snapshot] = []
                for index in sorted(outputs):
                    path = outputs[index]
                    if path not in active:  # an input passed through unchanged
                        results.append(by_path[path] if path in by_path else store.create((), description="scratch"))
                        continue
                    layer, layer_stack = active.pop(path)
                    layer_stack.close()
                    results.append(layer.commit(description=self._description()))
                return results
            finally:
                for layer, layer_stack in active.values():
                    layer_stack.close()
                    layer.discard()

    def _writes_new_top_level_entry(self, base: Path) -> bool:
        """True for the commonest COPY, `COPY . /src` where /src is new: one copy action whose
        destination is one path component that `base` does not have. Writing it straight into
        the new layer's upper directory is then the same as writing through the overlay (no
        lower entry to copy up, merge or hide), and the copier can hardlink the files of an
        immutable source layer into it, which it cannot across the overlay's mount."""
        actions = self.op.file.actions
        if len(actions) != 1 or actions[0].WhichOneof("action") != "copy" or actions[0].input != 0:
            return False
        parts = [p for p in posixpath.normpath("/" + actions[0].copy.dest).split("/") if p]
        return len(parts) == 1 and parts[0] != ".." and not os.path.lexists(base / parts[0])

    def _description(self) -> str:
        kinds = [a.WhichOneof("action") for a in self.op.file.actions]
        return "file " + ",".join(kinds)
