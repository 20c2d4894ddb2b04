"""The concurrent solver: cache keys, cache lookups and execution of a vertex graph.

Each vertex's key combines its op's cache map with its inputs' keys (or, for inputs that are
only read, a checksum of the content actually read), as BuildKit's solver does. Vertices whose
keys are equal run once, even across concurrent solves sharing one Solver.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pybuildkit.solver.cachestore import CacheStore
from pybuildkit.solver.definition import Graph, Vertex
from pybuildkit.solver.errors import BuildError, SolveError
from pybuildkit.solver.faults import SNAPSHOT_COMMITTED_NO_RECORD, crashpoint
from pybuildkit.solver.progress import ProgressWriter, VertexEvent, now_ns


@dataclass(frozen=True)
class Dep:
    """How an input contributes to the key: by its own key, or by a checksum of what is read."""

    selectors: tuple[str, ...] = ()
    content: bool = False
    wildcard: bool = False
    follow_links: bool = True


@dataclass(frozen=True)
class CacheMap:
    digest: str
    deps: tuple[Dep, ...] = ()


class Result(Protocol):
    id: str


@dataclass(frozen=True)
class InputKey:
    """One dependency of a cache key, as an exported cache record links it.

    `key` is the dependency's output key, or for a content dependency the checksum of what
    is read; `selector` is the digest of the selected paths ("" for the whole input)."""

    key: str
    selector: str = ""
    content: bool = False
    source: str = ""  # the dependency's output key (also for content dependencies)


@dataclass(frozen=True)
class KeyParts:
    """What a vertex output's key is made of: its op's cache-map digest, the output index and
    its dependencies. Remote caches store keys in this linked shape, as BuildKit's do."""

    digest: str
    index: int
    inputs: tuple[InputKey, ...]


@dataclass
class SolvedKey:
    """A vertex output seen by one solve: its key parts and its result (for cache export)."""

    parts: KeyParts
    vertex: str
    result: Result | None = None


class LazyResult:
    """A result known from an imported cache: its content is fetched only when something reads it
    (a step that runs on it, a content checksum, an exporter)."""

    def __init__(self, result_id: str, load: Callable[[], Awaitable[Result]], blobs: Sequence[str] = ()) -> None:
        self.id = result_id
        self.blobs = tuple(blobs)  # digests of the layer blobs it would fetch, bottom first
        self._load = load
        self._lock = asyncio.Lock()
        self._value: Result | None = None

    async def get(self) -> Result:
        async with self._lock:
            if self._value is None:
                self._value = await self._load()
            return self._value


class CacheSource(Protocol):
    """An imported cache: finds a result for a key by its parts, without executing anything."""

    def lookup(self, key: str, parts: KeyParts) -> LazyResult | None: ...


async def materialize(result: Any) -> Any:
    """The real result behind a possibly lazy one."""
    return await result.get() if isinstance(result, LazyResult) else result


class Job:
    """What one solve carries down to ops: its progress and the client's providers."""

    def __init__(self, progress: ProgressWriter, *, providers: Any = None,
                 entitlements: Sequence[str] = (), session_id: str = "",
                 cache_sources: Sequence[CacheSource] = ()) -> None:
        self.progress = progress
        self.providers = providers
        self.entitlements = set(entitlements)
        self.session_id = session_id
        self.cache_sources = list(cache_sources)


class OpContext:
    """Per-vertex context handed to an op: where to log, which job it serves."""

    def __init__(self, job: Job, vertex: Vertex) -> None:
        self.job = job
        self.vertex = vertex

    def log(self, stream: int, data: bytes) -> None:
        self.job.progress.log(self.vertex.digest, stream, data)


class OpImpl(Protocol):
    """May also have `reused(results)`, called when the results come from the cache instead."""

    async def cache_map(self, ctx: OpContext, inputs: Sequence[Result | None]) -> CacheMap: ...

    async def execute(self, ctx: OpContext, inputs: Sequence[Result | None]) -> list[Result]: ...


class Worker(Protocol):
    def op_for(self, vertex: Vertex) -> OpImpl: ...

    async def content_checksum(self, result: Result | None, dep: Dep) -> str: ...

    def load_result(self, result_id: str) -> Result | None: ...


def _digest(*parts: object) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def output_key(base_key: str, index: int) -> str:
    return _digest("output", base_key, index)


def selector_digest(selectors: Sequence[str]) -> str:
    if not selectors:
        return ""
    return "sha256:" + hashlib.sha256("\x00".join(selectors).encode()).hexdigest()


@dataclass
class _Outcome:
    base_key: str
    results: list[Result]
    cached: bool


@dataclass
class _Shared:
    task: asyncio.Task[_Outcome]
    waiters: int = 0


@dataclass
class SolveResult:
    result: Result | None
    cached_vertices: set[str] = field(default_factory=set)
    executed_vertices: set[str] = field(default_factory=set)
    keys: dict[str, SolvedKey] = field(default_factory=dict)  # output key -> its parts and result
    result_key: str = ""


class Solver:
    def __init__(self, worker: Worker, cache: CacheStore, *, max_parallelism: int = 4) -> None:
        self.worker = worker
        self.cache = cache
        self._limit = asyncio.Semaphore(max(1, max_parallelism))
        self._inflight: dict[str, _Shared] = {}

    async def solve(self, graph: Graph, job: Job) -> SolveResult:
        outcome = SolveResult(None)
        if graph.result is None:
            return outcome
        tasks: dict[str, asyncio.Task[_Outcome]] = {}

        def schedule(vertex: Vertex) -> asyncio.Task[_Outcome]:
            task = tasks.get(vertex.digest)
            if task is None:
                task = asyncio.ensure_future(self._vertex(vertex, job, schedule, outcome))
                tasks[vertex.digest] = task
            return task

        vertex, index = graph.result
        try:
            done = await schedule(vertex)
        except BaseException:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            raise
        if index >= len(done.results):
            raise SolveError(f"invalid output index {index} for {vertex.digest}", vertex=vertex.digest)
        outcome.result = await materialize(done.results[index])
        outcome.result_key = output_key(done.base_key, index)
        return outcome

    async def _vertex(self, vertex: Vertex, job: Job, schedule, outcome: SolveResult) -> _Outcome:
        input_outcomes = await asyncio.gather(*(schedule(v) for v, _ in vertex.inputs))
        inputs: list[Result | None] = []
        for (child, index), child_outcome in zip(vertex.inputs, input_outcomes):
            if index >= len(child_outcome.results):
                raise SolveError(f"invalid output index {index} of {child.digest}", vertex=vertex.digest)
            inputs.append(child_outcome.results[index])
        impl = self.worker.op_for(vertex)
        ctx = OpContext(job, vertex)
        event = VertexEvent(vertex.digest, vertex.name, [v.digest for v, _ in vertex.inputs], started=now_ns())
        if vertex.metadata.HasField("progress_group"):
            pg = vertex.metadata.progress_group
            event.progress_group = (pg.id, pg.name, pg.weak)
        job.progress.vertex(event)
        try:
            cache_map = await impl.cache_map(ctx, inputs)
            base_key, all_parts = await self._keys(vertex, cache_map, inputs, input_outcomes, job)
            shared = self._inflight.get(base_key)
            if shared is None:
                shared = _Shared(asyncio.ensure_future(
                    self._compute(vertex, impl, ctx, inputs, base_key, all_parts)))
                self._inflight[base_key] = shared
                shared.task.add_done_callback(lambda _t, k=base_key: self._inflight.pop(k, None))  # type: ignore[misc]
            shared.waiters += 1
            try:
                result = await asyncio.shield(shared.task)
            except asyncio.CancelledError:
                shared.waiters -= 1
                if shared.waiters == 0:
                    shared.task.cancel()
                    # wait for its clean-up (killing the container, removing mounts) to finish
                    await asyncio.gather(shared.task, return_exceptions=True)
                raise
            shared.waiters -= 1
        except asyncio.CancelledError:
            event.completed = now_ns()
            event.error = "context canceled"
            job.progress.vertex(event)
            raise
        except BuildError as exc:
            event.completed = now_ns()
            event.error = exc.message  # the hint travels separately and is printed once
            job.progress.vertex(event)
            if isinstance(exc, SolveError):
                raise
            raise SolveError(exc.message, vertex=vertex.digest, hint=exc.hint) from exc
        except Exception as exc:  # an op bug must still fail only this build, with a message
            event.completed = now_ns()
            event.error = f"{type(exc).__name__}: {exc}"
            job.progress.vertex(event)
            raise SolveError(f"internal error in {vertex.kind} op: {type(exc).__name__}: {exc}",
                             vertex=vertex.digest) from exc
        event.completed = now_ns()
        event.cached = result.cached
        job.progress.vertex(event)
        (outcome.cached_vertices if result.cached else outcome.executed_vertices).add(vertex.digest)
        for parts, produced in zip(all_parts, result.results):
            outcome.keys[output_key(base_key, parts.index)] = SolvedKey(parts, vertex.digest, produced)
        return result

    async def _keys(self, vertex: Vertex, cache_map: CacheMap, inputs: list[Result | None],
                    input_outcomes: Sequence[_Outcome], job: Job) -> tuple[str, list[KeyParts]]:
        """The vertex's key. Content dependencies are checksummed, except that an input still
        lazy (imported, not fetched) is first tried by its producer's key, as BuildKit tries
        fast keys before slow ones: a hit then needs none of that input's layers."""
        deps = [cache_map.deps[p] if p < len(cache_map.deps) else Dep() for p in range(len(vertex.inputs))]
        sources = [output_key(o.base_key, index) for (_, index), o in zip(vertex.inputs, input_outcomes)]
        count = output_count(vertex)
        lazy = [dep.content and isinstance(inputs[p], LazyResult) for p, dep in enumerate(deps)]
        if job.cache_sources and not vertex.ignore_cache and any(lazy):
            fast = [InputKey(src, selector_digest(dep.selectors), False, src) for dep, src in zip(deps, sources)]
            fast_key = _digest("vertex-by-producer", cache_map.digest, [[k.key, k.selector] for k in fast])
            fast_parts = [KeyParts(cache_map.digest, i, tuple(fast)) for i in range(count)]
            if self._lookup_imported(fast_key, vertex, fast_parts, job.cache_sources) is not None:
                return fast_key, fast_parts
        input_keys = []
        linked: list[InputKey] = []
        for position, (dep, source) in enumerate(zip(deps, sources)):
            if dep.content:
                inputs[position] = await materialize(inputs[position])
                key = await self.worker.content_checksum(inputs[position], dep)
            else:
                key = source
            input_keys.append([key, list(dep.selectors)])
            linked.append(InputKey(key, selector_digest(dep.selectors), dep.content, source))
        base_key = _digest("vertex", cache_map.digest, input_keys)
        return base_key, [KeyParts(cache_map.digest, i, tuple(linked)) for i in range(count)]

    async def _compute(self, vertex: Vertex, impl: OpImpl, ctx: OpContext,
                       inputs: list[Result | None], base_key: str, parts: list[KeyParts]) -> _Outcome:
        # imported caches see every key, so their records' links can match this key's dependents
        imported = self._lookup_imported(base_key, vertex, parts, ctx.job.cache_sources)
        if not vertex.ignore_cache:
            cached = self._lookup(base_key, vertex) or imported
            if cached is not None:
                if (reused := getattr(impl, "reused", None)) is not None:
                    reused(cached)
                return _Outcome(base_key, cached, True)
        inputs = [await materialize(i) for i in inputs]
        async with self._limit:
            results = await impl.execute(ctx, inputs)
        crashpoint(SNAPSHOT_COMMITTED_NO_RECORD)
        for index, result in enumerate(results):
            if result is not None:
                self.cache.save(output_key(base_key, index), result.id, vertex.digest)
        return _Outcome(base_key, results, False)

    def _lookup(self, base_key: str, vertex: Vertex) -> list[Result] | None:
        count = output_count(vertex)
        results: list[Result] = []
        for index in range(count):
            result_id = self.cache.lookup(output_key(base_key, index))
            if result_id is None:
                return None
            result = self.worker.load_result(result_id)
            if result is None:
                return None
            results.append(result)
        return results


    def _lookup_imported(self, base_key: str, vertex: Vertex, parts: list[KeyParts],
                         sources: Sequence[CacheSource]) -> list[Result] | None:
        """A hit in an imported cache; each result is fetched when first read, then recorded
        locally so the next build finds it without the import."""
        for source in sources:
            found = [source.lookup(output_key(base_key, p.index), p) for p in parts]
            if all(f is not None for f in found):
                return [self._record_when_loaded(output_key(base_key, p.index), vertex, f)
                        for p, f in zip(parts, found) if f is not None]
        return None

    def _record_when_loaded(self, key: str, vertex: Vertex, remote: LazyResult) -> LazyResult:
        async def load() -> Result:
            result = await remote.get()
            self.cache.save(key, result.id, vertex.digest)
            return result

        return LazyResult(remote.id, load, remote.blobs)


def output_count(vertex: Vertex) -> int:
    if vertex.kind == "exec":
        return max(1, sum(1 for m in vertex.op.exec.mounts if m.output >= 0))
    return 1
