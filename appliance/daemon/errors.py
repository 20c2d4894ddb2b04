"""Typed build errors as gRPC status codes, with the message the CLI prints."""
from __future__ import annotations

import grpc

from pybuildkit.solver.budget import BudgetExceededError
from pybuildkit.solver.errors import (BuildError, CancelledError, ConfigError, EntitlementError,
                                      InvalidDefinitionError)


def status_code(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, CancelledError):
        return grpc.StatusCode.CANCELLED
    if isinstance(exc, BudgetExceededError):  # the build asked for more than the daemon gives one build
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(exc, EntitlementError):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(exc, (InvalidDefinitionError, ConfigError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    name = type(exc).__name__
    if name in ("DockerfileError", "UsageError", "ParseError"):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, BuildError):
        return grpc.StatusCode.UNKNOWN  # what buildkitd answers for a failed solve (s7 transcript)
    return grpc.StatusCode.INTERNAL


def message(exc: BaseException) -> str:
    """The grpc-message: exactly the error text, as buildkitd sends it (s7 transcript)."""
    if not isinstance(exc, BuildError):
        return f"internal error: {type(exc).__name__}: {exc}"
    return exc.message


DETAIL_KEYS = ("pybuildkit-excerpt-bin", "pybuildkit-output-tail-bin", "pybuildkit-hint-bin")


def trailing_details(exc: BaseException) -> tuple[tuple[str, bytes], ...]:
    """What pybuildctl prints around the message (Dockerfile excerpt, last output lines, hint),
    as trailing metadata that other clients ignore."""
    out: list[tuple[str, bytes]] = []
    excerpt = getattr(exc, "excerpt", None)
    text = excerpt() if callable(excerpt) else None
    if text:
        out.append((DETAIL_KEYS[0], text.encode()))
    tail = getattr(exc, "output_tail", None) or getattr(getattr(exc, "__cause__", None), "output_tail", None)
    if tail:
        out.append((DETAIL_KEYS[1], "\n".join(tail).encode()))
    hint = getattr(exc, "hint", None)
    if hint:
        out.append((DETAIL_KEYS[2], hint.encode()))
    return tuple(out)
