"""Loading an LLB Definition into a validated graph of vertices.

Digests are recomputed from our own marshalling of each op, as BuildKit's loader does, so a
client that ordered fields differently still builds and progress reports canonical digests.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pybuildkit.solver.errors import InvalidDefinitionError
from pybuildkit.solver.llb.marshal import digest_of, op_digest
from pybuildkit.solver.pb import ops_pb2 as pb

KNOWN_OPS = {"exec", "source", "file", "build", "merge", "diff"}


@dataclass(eq=False)
class Vertex:
    digest: str
    op: pb.Op
    inputs: list[tuple["Vertex", int]] = field(default_factory=list)
    metadata: pb.OpMetadata = field(default_factory=pb.OpMetadata)
    name: str = ""

    @property
    def kind(self) -> str:
        return self.op.WhichOneof("op") or ""

    @property
    def ignore_cache(self) -> bool:
        return self.metadata.ignore_cache


@dataclass
class Graph:
    vertices: dict[str, Vertex]
    result: tuple[Vertex, int] | None  # None: the definition is empty (a scratch result)
    source: pb.Source | None = None

    def topological(self) -> list[Vertex]:
        """Inputs before the ops that use them; iterative, so a chain of any depth fits."""
        order: list[Vertex] = []
        seen: set[str] = set()
        if self.result is None:
            return order
        stack: list[tuple[Vertex, bool]] = [(self.result[0], False)]
        while stack:
            v, expanded = stack.pop()
            if expanded:
                order.append(v)
                continue
            if v.digest in seen:
                continue
            seen.add(v.digest)
            stack.append((v, True))
            for inp, _ in reversed(v.inputs):
                if inp.digest not in seen:
                    stack.append((inp, False))
        return order


def vertex_name(op: pb.Op, metadata: pb.OpMetadata) -> str:
    """Progress name: the client's custom name, else a description of the op as BuildKit gives."""
    custom = metadata.description.get("llb.customname")
    if custom:
        return custom
    kind = op.WhichOneof("op")
    if kind == "source":
        return op.source.identifier
    if kind == "exec":
        return " ".join(op.exec.meta.args)
    if kind == "file":
        names = []
        for action in op.file.actions:
            which = action.WhichOneof("action")
            target = getattr(action, which)
            names.append(f"{which} {getattr(target, 'path', '') or getattr(target, 'dest', '') or getattr(target, 'newpath', '')}".strip())
        return ", ".join(names)
    return kind or "unknown"


def parse_definition(data: bytes) -> pb.Definition:
    """A marshalled Definition from a client (stdin, the API); bad bytes are a typed error."""
    definition = pb.Definition()
    try:
        definition.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError, or RecursionError on deep nesting
        raise InvalidDefinitionError(f"failed to parse llb definition: {type(exc).__name__}: {exc}"[:500],
                                     hint="send a marshalled pb.Definition") from None
    return definition


def load_definition(definition: pb.Definition) -> Graph:
    raw_ops = list(getattr(definition, "def"))
    if not raw_ops:
        return Graph({}, None)
    parsed: dict[str, pb.Op] = {}
    canonical: dict[str, str] = {}  # client digest -> our digest
    for index, raw in enumerate(raw_ops):
        op = pb.Op()
        try:
            op.ParseFromString(raw)
        except Exception as exc:  # protobuf raises DecodeError; any failure means bad bytes
            raise InvalidDefinitionError(f"failed to parse llb definition op {index}: {exc}"[:500]) from None
        parsed[digest_of(raw)] = op
    client_digests = [digest_of(raw) for raw in raw_ops]
    terminal_digest = client_digests[-1]
    terminal = parsed[terminal_digest]
    if terminal.WhichOneof("op") is not None or len(terminal.inputs) != 1:
        raise InvalidDefinitionError("invalid LLB with no inputs on last vertex",
                                     hint="the last op of a Definition must only point at the result")
    for digest, op in parsed.items():
        if digest == terminal_digest:
            continue
        kind = op.WhichOneof("op")
        if kind is None:
            raise InvalidDefinitionError(f"invalid op {digest}: unknown or missing op type",
                                         hint="the definition may come from a newer BuildKit client")
        if kind not in KNOWN_OPS:
            raise InvalidDefinitionError(f"invalid op {digest}: {kind} ops are not supported")

    vertices: dict[str, Vertex] = {}

    def finish(digest: str, op: pb.Op) -> None:
        """Called once every input of `digest` is canonical: give the op our own digest."""
        inputs = []
        new_op = pb.Op()
        new_op.CopyFrom(op)
        del new_op.inputs[:]
        for inp in op.inputs:
            child = vertices[canonical[inp.digest]]
            inputs.append((child, inp.index))
            new_op.inputs.add(digest=child.digest, index=inp.index)
        ours, _ = op_digest(new_op)
        md = definition.metadata.get(digest) if digest in definition.metadata else None
        vertex = vertices.get(ours)
        if vertex is None:
            vertex = Vertex(ours, new_op, inputs, md or pb.OpMetadata())
            vertex.name = vertex_name(new_op, vertex.metadata)
            vertices[ours] = vertex
        canonical[digest] = ours
        _check_indexes(vertex)

    def build(root: str) -> Vertex:
        # Depth-first with an explicit stack: a client may send a chain deeper than Python's
        # recursion limit, and that must be a build like any other, not a RecursionError.
        visiting: set[str] = set()
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            digest, next_input = stack.pop()
            if next_input == 0:
                if digest in canonical:
                    continue
                if digest in visiting:
                    raise InvalidDefinitionError(f"invalid LLB: cycle detected at {digest}")
                if digest not in parsed:
                    raise InvalidDefinitionError(f"invalid missing input digest {digest}")
                visiting.add(digest)
            op = parsed[digest]
            if next_input < len(op.inputs):
                stack.append((digest, next_input + 1))
                child = op.inputs[next_input].digest
                if child in visiting:
                    raise InvalidDefinitionError(f"invalid LLB: cycle detected at {child}")
                if child not in canonical:
                    stack.append((child, 0))
                continue
            visiting.discard(digest)
            finish(digest, op)
        return vertices[canonical[root]]

    result_input = terminal.inputs[0]
    result_vertex = build(result_input.digest)
    graph = Graph(vertices, (result_vertex, result_input.index),
                  definition.Source if definition.HasField("Source") else None)
    return graph


def _check_indexes(vertex: Vertex) -> None:
    op = vertex.op
    count = len(op.inputs)
    kind = op.WhichOneof("op")
    if kind == "exec":
        for m in op.exec.mounts:
            if m.input >= count:
                raise InvalidDefinitionError(
                    f"invalid mount input {m.input} on {vertex.digest}: the op has {count} inputs")
    elif kind == "file":
        actions = len(op.file.actions)
        for i, a in enumerate(op.file.actions):
            for idx in (a.input, a.secondaryInput):
                if idx >= count + i or idx < -1:
                    raise InvalidDefinitionError(
                        f"invalid file action input {idx} on {vertex.digest} (action {i} of {actions})")
    elif kind == "merge":
        for m in op.merge.inputs:
            if not 0 <= m.input < count:
                raise InvalidDefinitionError(f"invalid merge input {m.input} on {vertex.digest}")
    elif kind == "diff":
        for side in (op.diff.lower, op.diff.upper):
            if side.input >= count or side.input < -1:
                raise InvalidDefinitionError(f"invalid diff input {side.input} on {vertex.digest}")
