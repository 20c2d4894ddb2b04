"""The client's side of a session: the services pybuildctl hosts for the daemon (files, secrets,
ssh agents, registry credentials, and the outputs the daemon sends back)."""
from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets as random
import string
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import grpc

from pybuildkit.appliance.session import services as svc
from pybuildkit.appliance.session.fsutilwire import receive_tree, send_tree
from pybuildkit.appliance.session.packets import PacketStream, message_type
from pybuildkit.appliance.session.proto import batch_pb2 as bpb
from pybuildkit.appliance.session.proto import fsutil_pb2 as fpb
from pybuildkit.appliance.session.proto import session_pb2 as spb
from pybuildkit.appliance.session.transport import Outbox, ServedOverStream
from pybuildkit.worker.fsutil.walk import WalkOptions
from pybuildkit.worker.providers import CredentialProvider, SecretSources, SSHAgents

#: how the client names itself to token services it asks on the daemon's behalf
TOKEN_USER_AGENT = "pybuildctl"


@dataclass(frozen=True)
class OutputTarget:
    """Where an exporter's result lands on the client: a directory (`local`) or a file/stdout."""

    kind: str  # "dir" or "file"
    dest: str  # a path, or "-" for stdout


def _new_id() -> str:
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(25))


def _meta(context: grpc.aio.ServicerContext) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in context.invocation_metadata() or ():
        out.setdefault(key.lower(), []).append(value if isinstance(value, str) else value.decode())
    return out


def _handler(kind: str, fn: Any, req: Any, resp: Any) -> grpc.RpcMethodHandler:
    maker = {"unary": grpc.unary_unary_rpc_method_handler, "stream": grpc.stream_stream_rpc_method_handler}[kind]
    return maker(fn, request_deserializer=req.FromString, response_serializer=resp.SerializeToString)


class _RawBytes:
    """A message type whose bytes stay as they are (FileSend carries Packets or BytesMessages)."""

    @staticmethod
    def FromString(data: bytes) -> bytes:  # noqa: N802 - grpc's deserializer protocol
        return data


WRITE_BEHIND_CHUNKS = 16  # FileSend messages (1 MiB each from pybuildkitd) waiting for the disk


async def _write_behind(out: BinaryIO, context: grpc.aio.ServicerContext) -> None:
    """The stream's BytesMessages into `out`, written in a thread while the next ones arrive:
    a 200 MB tarball then costs the transfer or the disk, whichever is slower, not both. A
    failed write stops the writing, not the draining, so the reader never waits on a full queue."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(WRITE_BEHIND_CHUNKS)
    failed: list[BaseException] = []

    async def writer() -> None:
        ended = False
        while not ended:
            parts: list[bytes] = []
            while not parts or not queue.empty():
                data = await queue.get()
                if data is None:
                    ended = True
                    break
                parts.append(data)
            if parts and not failed:
                try:
                    await asyncio.to_thread(out.writelines, parts)
                except OSError as exc:
                    failed.append(exc)

    task = asyncio.ensure_future(writer())
    try:
        while (msg := await context.read()) is not grpc.aio.EOF:
            await queue.put(spb.BytesMessage.FromString(msg).data)
        await queue.put(None)
        await task
    finally:
        task.cancel()
    if failed:
        raise failed[0]


@dataclass
class ClientSession:
    shared_key: str = ""
    name: str = ""
    dirs: Mapping[str, Path] = field(default_factory=dict)
    secrets: SecretSources | None = None
    ssh: SSHAgents | None = None
    credentials: CredentialProvider | None = None
    outputs: Sequence[OutputTarget | None] = ()
    session_id: str = field(default_factory=_new_id)
    #: offer pybuildkit's batched DiffCopy twins next to upstream's (appliance/session/packets.py)
    batched: bool = True

    def __post_init__(self) -> None:
        self._closed = asyncio.Event()
        self._server: ServedOverStream | None = None
        self._starting: asyncio.Future[None] | None = None
        self._running = False

    # -- what we serve ---------------------------------------------------------------------

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        out = {svc.HEALTH_CHECK: _handler("unary", self._health, spb.HealthCheckRequest, spb.HealthCheckResponse)}
        if self.dirs:
            out[svc.FILESYNC_DIFFCOPY] = _handler("stream", self._diffcopy, fpb.Packet, fpb.Packet)
            if self.batched:
                out[svc.FILESYNC_DIFFCOPY_BATCHED] = _handler("stream", functools.partial(self._diffcopy, batched=True),
                                                              bpb.PacketBatch, bpb.PacketBatch)
        if any(self.outputs):
            out[svc.FILESEND_DIFFCOPY] = grpc.stream_stream_rpc_method_handler(
                self._filesend, request_deserializer=_RawBytes.FromString, response_serializer=bytes)
            if self.batched:
                out[svc.FILESEND_DIFFCOPY_BATCHED] = grpc.stream_stream_rpc_method_handler(
                    functools.partial(self._filesend, batched=True), request_deserializer=_RawBytes.FromString,
                    response_serializer=bytes)
        if self.secrets is not None:
            out[svc.SECRETS_GET] = _handler("unary", self._get_secret, spb.GetSecretRequest, spb.GetSecretResponse)
        if self.ssh is not None and self.ssh.sockets:
            out[svc.SSH_CHECK] = _handler("unary", self._check_agent, spb.CheckAgentRequest, spb.CheckAgentResponse)
            out[svc.SSH_FORWARD] = _handler("stream", self._forward_agent, spb.BytesMessage, spb.BytesMessage)
        if self.credentials is not None:
            out[svc.AUTH_CREDENTIALS] = _handler("unary", self._credentials, spb.CredentialsRequest,
                                                 spb.CredentialsResponse)
            out[svc.AUTH_FETCH_TOKEN] = _handler("unary", self._fetch_token, spb.FetchTokenRequest,
                                                 spb.FetchTokenResponse)
        return out

    def methods(self) -> list[str]:
        return sorted(self.handlers())

    def _generic(self) -> list[grpc.GenericRpcHandler]:
        by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        for path, handler in self.handlers().items():
            service, method = svc.split(path)
            by_service.setdefault(service, {})[method] = handler
        return [grpc.method_handlers_generic_handler(s, m) for s, m in by_service.items()]

    async def _health(self, request: spb.HealthCheckRequest, context: grpc.aio.ServicerContext):
        return spb.HealthCheckResponse(status=spb.HealthCheckResponse.SERVING)

    async def _diffcopy(self, requests: AsyncIterator[fpb.Packet], context: grpc.aio.ServicerContext, *,
                        batched: bool = False) -> None:
        meta = _meta(context)
        name = (meta.get(svc.KEY_DIR_NAME) or [""])[0]
        root = self.dirs.get(name)
        if root is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no local directory named {name!r} was given "
                                                           f"(pass --local {name}=DIR)")
        opts = WalkOptions(tuple(meta.get(svc.KEY_INCLUDE, [])), tuple(meta.get(svc.KEY_EXCLUDE, [])),
                           tuple(meta.get(svc.KEY_FOLLOW, [])))
        known_walk = (meta.get(svc.KEY_KNOWN_WALK) or [""])[0] if batched else ""
        await send_tree(root, opts, PacketStream(context.read, context.write, batched=batched), known_walk=known_walk)

    async def _filesend(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext, *,
                        batched: bool = False) -> None:
        meta = _meta(context)
        try:
            index = int((meta.get(svc.KEY_EXPORTER_ID) or ["0"])[0])
            target = self.outputs[index]
        except (ValueError, IndexError):
            target = None
        if target is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no output of that id on this client")
        assert target is not None
        if target.kind == "dir":
            decode = message_type(batched).FromString

            async def read() -> Any:
                msg = await context.read()
                return msg if msg is grpc.aio.EOF else decode(msg)

            async def write(message: Any) -> None:
                await context.write(message.SerializeToString())

            await receive_tree(Path(target.dest), PacketStream(read, write, batched=batched), owners=os.geteuid() == 0)
            return
        if batched:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a file output is sent with FileSend, not batched")
        if target.dest == "-":
            await _write_behind(sys.stdout.buffer, context)
            sys.stdout.buffer.flush()
            return
        part = target.dest + ".pbk-part"
        try:
            with open(part, "wb") as out:
                await _write_behind(out, context)
        except BaseException:  # a failed or cancelled transfer leaves no partial file
            with contextlib.suppress(OSError):
                os.unlink(part)
            raise
        os.replace(part, target.dest)

    async def _get_secret(self, request: spb.GetSecretRequest, context: grpc.aio.ServicerContext):
        assert self.secrets is not None
        data = self.secrets.get_secret(request.ID)
        if data is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"secret {request.ID} not found")
        return spb.GetSecretResponse(data=data)

    async def _check_agent(self, request: spb.CheckAgentRequest, context: grpc.aio.ServicerContext):
        assert self.ssh is not None
        if self.ssh.agent_socket(request.ID or "default") is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no ssh agent {request.ID or 'default'!r} forwarded")
        return spb.CheckAgentResponse()

    async def _forward_agent(self, requests: AsyncIterator[spb.BytesMessage], context: grpc.aio.ServicerContext):
        assert self.ssh is not None
        agent = (_meta(context).get(svc.KEY_SSH_ID) or ["default"])[0]
        path = self.ssh.agent_socket(agent)
        if path is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no ssh agent {agent!r} forwarded")
        reader, writer = await asyncio.open_unix_connection(str(path))

        async def upstream() -> None:
            while True:
                msg = await context.read()
                if msg is grpc.aio.EOF:
                    break
                writer.write(msg.data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        task = asyncio.ensure_future(upstream())
        try:
            while data := await reader.read(1 << 16):
                await context.write(spb.BytesMessage(data=data))
        finally:
            task.cancel()
            writer.close()

    async def _credentials(self, request: spb.CredentialsRequest, context: grpc.aio.ServicerContext):
        assert self.credentials is not None
        creds = await asyncio.to_thread(self.credentials.credentials, request.Host)
        if not creds:
            return spb.CredentialsResponse()
        return spb.CredentialsResponse(Username=creds[0], Secret=creds[1])

    async def _fetch_token(self, request: spb.FetchTokenRequest, context: grpc.aio.ServicerContext):
        """Fetch the registry's bearer token here, with our credentials, and hand the daemon only
        the token (as buildctl does): the password never leaves this process."""
        from pybuildkit.worker.registry.httpclient import httpx

        from pybuildkit.worker.registry.token import TokenError, fetch_token

        assert self.credentials is not None
        creds = await asyncio.to_thread(self.credentials.credentials, request.Host)
        async with httpx.AsyncClient(timeout=httpx.Timeout(60, connect=10), follow_redirects=True,
                                     headers={"User-Agent": TOKEN_USER_AGENT}) as http:
            try:
                token = await fetch_token(http, host=request.Host, realm=request.Realm, service=request.Service,
                                          scopes=list(request.Scopes), credentials=creds)
            except TokenError as exc:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
        return spb.FetchTokenResponse(Token=token.token, ExpiresIn=token.expires_in, IssuedAt=token.issued_at)

    # -- the stream ------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Start the services the daemon will call; `run` does it if nobody did before (a
        client starts it while the daemon's first answer is on its way)."""
        if self._server is None:
            self._server = ServedOverStream(self._generic())
            self._starting = asyncio.ensure_future(self._server.start())
        assert self._starting is not None
        await asyncio.shield(self._starting)

    async def run(self, channel: grpc.aio.Channel) -> None:
        """Open Control.Session and serve the daemon over it until closed."""
        self._running = True
        await self.prepare()
        server = self._server
        assert server is not None
        outgoing = Outbox()
        metadata = [(svc.HEADER_UUID, self.session_id), (svc.HEADER_SHARED_KEY, self.shared_key)]
        if self.name:
            metadata.append((svc.HEADER_NAME, self.name))
        metadata += [(svc.HEADER_METHOD, m) for m in self.methods()]

        async def requests() -> AsyncIterator[spb.BytesMessage]:
            async for data in outgoing.messages():
                yield spb.BytesMessage(data=data)

        call = channel.stream_stream("/moby.buildkit.v1.Control/Session",
                                     request_serializer=spb.BytesMessage.SerializeToString,
                                     response_deserializer=spb.BytesMessage.FromString)(requests(), metadata=metadata)

        async def incoming() -> AsyncIterator[bytes]:
            with contextlib.suppress(grpc.aio.AioRpcError):
                async for message in call:
                    yield message.data

        serving = asyncio.ensure_future(server.serve(incoming(), outgoing.put))
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait([serving, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            outgoing.close()
            for task in (serving, closed):
                task.cancel()
            await asyncio.gather(serving, closed, return_exceptions=True)
            call.cancel()
            await server.close()

    async def close(self) -> None:
        self._closed.set()
        if self._server is not None and not self._running:  # prepared, never run: run's clean-up is ours
            if self._starting is not None:
                with contextlib.suppress(Exception):
                    await self._starting
            await self._server.close()
            self._server = None
