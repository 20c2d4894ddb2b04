"""MergeOp and DiffOp over layer stacks."""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.scheduler import CacheMap, OpContext
from pybuildkit.worker.snapshot.store import Driver, Snapshot

if TYPE_CHECKING:
    from pybuildkit.worker.worker import Worker


class MergeOp:
    def __init__(self, worker: "Worker", op: pb.Op) -> None:
        self.worker = worker
        self.op = op

    async def cache_map(self, ctx: OpContext, inputs: Sequence[object]) -> CacheMap:
        order = ",".join(str(m.input) for m in self.op.merge.inputs)
        return CacheMap("sha256:" + hashlib.sha256(f"merge:{order}".encode()).hexdigest())

    async def execute(self, ctx: OpContext, inputs: Sequence[Snapshot | None]) -> list[Snapshot]:
        snaps = [inputs[m.input] for m in self.op.merge.inputs]
        present = [s for s in snaps if s is not None]
        return [await asyncio.to_thread(self.worker.snapshots.merge, present, description="merge")]


class DiffOp:
    def __init__(self, worker: "Worker", op: pb.Op) -> None:
        self.worker = worker
        self.op = op

    async def cache_map(self, ctx: OpContext, inputs: Sequence[object]) -> CacheMap:
        text = f"diff:{self.op.diff.lower.input}:{self.op.diff.upper.input}"
        return CacheMap("sha256:" + hashlib.sha256(text.encode()).hexdigest())

    async def execute(self, ctx: OpContext, inputs: Sequence[Snapshot | None]) -> list[Snapshot]:
        lower = inputs[self.op.diff.lower.input] if self.op.diff.lower.input >= 0 else None
        upper = inputs[self.op.diff.upper.input] if self.op.diff.upper.input >= 0 else None
        store = self.worker.snapshots
        if upper is None:
            return [store.create((), description="diff (empty)")]
        lower_layers = lower.layers if lower is not None else ()
        if store.driver != Driver.NATIVE and upper.layers[:len(lower_layers)] == lower_layers:
            return [store.create(upper.layers[len(lower_layers):], description="diff")]
        return [await asyncio.to_thread(self._tree_diff, lower, upper)]

    def _tree_diff(self, lower: Snapshot | None, upper: Snapshot) -> Snapshot:
        """Materialise the difference as a new layer (with whiteouts) when stacks diverge."""
        import io
        from pybuildkit.worker.layer.diff import changes_between, write_layer_tar
        from pybuildkit.worker.layer.unpack import apply_layer

        store = self.worker.snapshots
        with store.view(lower) as lower_path, store.view(upper) as upper_path:
            changes = changes_between(lower_path, upper_path)
            buffer = io.BytesIO()
            write_layer_tar(changes, upper_path, buffer)
        buffer.seek(0)
        layer = store.new_layer(None)
        try:
            mode = "overlay" if store.driver != Driver.NATIVE else "delete"
            apply_layer(buffer, layer.path, whiteout_mode=mode)
        except BuildError:
            layer.discard()
            raise
        return layer.commit(description="diff")
