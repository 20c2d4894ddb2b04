"""One build through a daemon: Solve and Status for one ref, the session beside them."""
from __future__ import annotations

import asyncio
import contextlib
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc

from pybuildkit.appliance.api.proto import control_pb2 as cpb
from pybuildkit.appliance.client.control import ControlClient
from pybuildkit.appliance.daemon.errors import DETAIL_KEYS
from pybuildkit.appliance.daemon.statusconv import from_status_response
from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.progress import ProgressWriter

_ALPHABET = string.ascii_lowercase + string.digits


def new_ref() -> str:
    """A 25-character id like buildctl's."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(25))


class RemoteBuildError(BuildError):
    """A failed solve as the daemon reported it, with the excerpt and output tail it attached."""

    def __init__(self, message: str, *, hint: str | None = None, excerpt_text: str = "",
                 output_tail: Sequence[str] = (), code: grpc.StatusCode | None = None) -> None:
        super().__init__(message, hint=hint)
        self._excerpt = excerpt_text
        self.output_tail = list(output_tail)
        self.code = code

    def excerpt(self) -> str:
        return self._excerpt


def error_from_rpc(exc: grpc.aio.AioRpcError) -> RemoteBuildError:
    details: dict[str, bytes] = {}
    for key, value in exc.trailing_metadata() or ():
        if key in DETAIL_KEYS:
            details[key] = value if isinstance(value, bytes) else str(value).encode()
    tail = details.get(DETAIL_KEYS[1], b"").decode(errors="replace")
    return RemoteBuildError(exc.details() or exc.code().name,
                            hint=details.get(DETAIL_KEYS[2], b"").decode() or None,
                            excerpt_text=details.get(DETAIL_KEYS[0], b"").decode(errors="replace"),
                            output_tail=tail.splitlines() if tail else (), code=exc.code())


@dataclass
class SolveOptions:
    definition: pb.Definition | None = None
    frontend: str = ""
    frontend_attrs: Mapping[str, str] = field(default_factory=dict)
    exporters: Sequence[tuple[str, Mapping[str, str]]] = ()
    entitlements: Sequence[str] = ()
    cache_exports: Sequence[tuple[str, Mapping[str, str]]] = ()
    cache_imports: Sequence[tuple[str, Mapping[str, str]]] = ()
    session_id: str = ""
    ref: str = field(default_factory=new_ref)


def solve_request(opts: SolveOptions) -> cpb.SolveRequest:
    req = cpb.SolveRequest(Ref=opts.ref, Session=opts.session_id, Frontend=opts.frontend,
                           FrontendAttrs=dict(opts.frontend_attrs), Entitlements=list(opts.entitlements))
    if opts.definition is not None:
        req.Definition.CopyFrom(opts.definition)
    for kind, attrs in opts.exporters:
        req.Exporters.add(Type=kind, Attrs=dict(attrs))
    if opts.exporters:  # buildctl duplicates the first exporter into the deprecated fields
        req.ExporterDeprecated = opts.exporters[0][0]
        req.ExporterAttrsDeprecated.update(dict(opts.exporters[0][1]))
    req.Cache.SetInParent()
    for kind, attrs in opts.cache_exports:
        req.Cache.Exports.add(Type=kind, Attrs=dict(attrs))
    for kind, attrs in opts.cache_imports:
        req.Cache.Imports.add(Type=kind, Attrs=dict(attrs))
    return req


async def run_solve(client: ControlClient, opts: SolveOptions, progress: ProgressWriter,
                    *, timeout: float | None = None) -> dict[str, str]:
    """Solve `opts`, feeding `progress` from the Status stream; returns the exporter response."""

    async def follow() -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for message in client.status(opts.ref):
                progress.write(from_status_response(message))

    watcher = asyncio.ensure_future(follow())
    call = client.solve(solve_request(opts), timeout=timeout)
    try:
        response = await call
    except grpc.aio.AioRpcError as exc:
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(watcher), 2.0)
        raise error_from_rpc(exc) from None
    except asyncio.CancelledError:
        call.cancel()
        raise
    finally:
        if not watcher.done():
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(watcher), 5.0)
            watcher.cancel()
    return dict(response.ExporterResponse)
