"""Loading a Definition validates it and names what is wrong, never a traceback."""
from __future__ import annotations

import pytest

from pybuildkit.solver.definition import load_definition
from pybuildkit.solver.errors import InvalidDefinitionError
from pybuildkit.solver.llb import builder as llb
from pybuildkit.solver.llb.marshal import digest_of, marshal_op
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.platforms import Platform

AMD64 = Platform("linux", "amd64")


def _definition(*ops: pb.Op) -> pb.Definition:
    d = pb.Definition()
    getattr(d, "def").extend(marshal_op(op) for op in ops)
    return d


def _source(identifier: str) -> pb.Op:
    op = pb.Op()
    op.source.identifier = identifier
    return op


def _terminal(target: pb.Op) -> pb.Op:
    op = pb.Op()
    op.inputs.add(digest=digest_of(marshal_op(target)))
    return op


def test_builder_output_loads_with_the_same_digests() -> None:
    base = llb.image("busybox")
    state = base.run(["true"]).root()
    definition = state.marshal(AMD64)
    graph = load_definition(definition)
    raw = list(getattr(definition, "def"))
    assert set(graph.vertices) == {digest_of(r) for r in raw[:-1]}
    assert graph.result[0].digest == digest_of(raw[-2])
    assert [v.kind for v in graph.topological()] == ["source", "exec"]


def test_empty_definition_is_a_scratch_result() -> None:
    assert load_definition(pb.Definition()).result is None


def test_last_op_must_point_at_the_result() -> None:
    src = _source("docker-image://docker.io/library/busybox:latest")
    with pytest.raises(InvalidDefinitionError, match="invalid LLB with no inputs on last vertex"):
        load_definition(_definition(src))


def test_missing_input_digest_is_named() -> None:
    exec_op = pb.Op()
    exec_op.inputs.add(digest="sha256:" + "0" * 64)
    exec_op.exec.meta.args.append("true")
    exec_op.exec.mounts.add(dest="/")
    with pytest.raises(InvalidDefinitionError, match="invalid missing input digest sha256:0000"):
        load_definition(_definition(exec_op, _terminal(exec_op)))


def test_unknown_op_type_is_refused() -> None:
    unknown = pb.Op()
    unknown.platform.OS = "linux"
    with pytest.raises(InvalidDefinitionError, match="unknown or missing op type"):
        load_definition(_definition(unknown, _terminal(unknown)))


def test_garbage_bytes_are_a_clear_error() -> None:
    d = pb.Definition()
    getattr(d, "def").extend([b"\xff\xff\xff", b"\x0a"])
    with pytest.raises(InvalidDefinitionError, match="failed to parse llb definition"):
        load_definition(d)


def test_mount_input_out_of_range_is_refused() -> None:
    src = _source("docker-image://docker.io/library/busybox:latest")
    exec_op = pb.Op()
    exec_op.inputs.add(digest=digest_of(marshal_op(src)))
    exec_op.exec.meta.args.append("true")
    exec_op.exec.mounts.add(dest="/", input=3)
    with pytest.raises(InvalidDefinitionError, match="invalid mount input 3"):
        load_definition(_definition(src, exec_op, _terminal(exec_op)))


def test_custom_names_become_vertex_names() -> None:
    state = llb.image("busybox", constraints=llb.Constraints(custom_name="the base"))
    graph = load_definition(state.marshal(AMD64))
    assert graph.result[0].name == "the base"
