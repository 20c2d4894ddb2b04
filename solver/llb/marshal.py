"""Marshalling LLB ops in BuildKit's byte order, so op digests match upstream's.

BuildKit marshals with vtprotobuf, which writes a message's `oneof` member after its regular
fields. Python's serializer writes strictly by field number, which would put `Op.exec` (2)
before `Op.platform` (10) and give different bytes, hence different digests. Only `Op` has a
oneof whose numbers are lower than regular fields (`FileAction` and `UserOpt` already agree).
"""
from __future__ import annotations

import hashlib

from pybuildkit.solver.pb import ops_pb2 as pb

_OP_ONEOF_FIELDS = {f.name: f.number for f in pb.Op.DESCRIPTOR.oneofs_by_name["op"].fields}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def serialize(message) -> bytes:
    """Deterministic serialization (sorted map keys), as Go's marshaller produces."""
    return message.SerializeToString(deterministic=True)


def marshal_op(op: pb.Op) -> bytes:
    member_name = op.WhichOneof("op")
    if member_name is None:
        return serialize(op)
    rest = pb.Op()
    rest.CopyFrom(op)
    rest.ClearField(member_name)
    body = serialize(getattr(op, member_name))
    tag = _varint((_OP_ONEOF_FIELDS[member_name] << 3) | 2)
    return serialize(rest) + tag + _varint(len(body)) + body


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def op_digest(op: pb.Op) -> tuple[str, bytes]:
    """The op's marshalled bytes and their digest, the op's identity everywhere."""
    data = marshal_op(op)
    return digest_of(data), data
