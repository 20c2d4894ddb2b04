"""Registering hand-written servicers with grpc (Debian's python3-grpcio has no code generator)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

KINDS = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def service(name: str, methods: dict[str, tuple[str, Callable[..., Any], Any, Any]]) -> grpc.GenericRpcHandler:
    """`methods`: method name -> (kind, handler, request type, response type)."""
    handlers = {
        method: KINDS[kind](fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString)
        for method, (kind, fn, req, resp) in methods.items()
    }
    return grpc.method_handlers_generic_handler(name, handlers)
