"""The daemon's side of sessions: each `Control.Session` stream becomes a gRPC channel to the
client, and builds of that session reach the client's files, secrets, ssh agents, credentials and
output directories only through it."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

from pybuildkit.appliance.session import services as svc
from pybuildkit.appliance.session.fsutilwire import receive_tree, send_tree
from pybuildkit.appliance.session.packets import PacketStream, message_type, method_for, serialize
from pybuildkit.appliance.session.proto import session_pb2 as spb
from pybuildkit.appliance.session.transport import DialedChannel, Outbox
from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.fsutil.walk import WalkOptions
from pybuildkit.worker.providers import OCI_LAYOUT_DIR_PREFIX, LocalSyncRequest, Providers
from pybuildkit.worker.registry.token import DEFAULT_EXPIRES_IN, Token

log = logging.getLogger("pybuildkitd")
HEALTH_INTERVAL = 10.0
HEALTH_TIMEOUT = 30.0
#: the ClientID BuildKit's daemon sends with FetchToken
TOKEN_CLIENT_ID = "buildkit-client"
#: a FileSend BytesMessage holds this up to twice this: large enough that a 300 MB tarball is a
#: few hundred hand-offs from the exporter's thread, under the 4 MiB a Go gRPC server accepts
FILE_SEND_CHUNK = 1 << 20


class SessionError(BuildError):
    pass


def _first(metadata: Mapping[str, Any], key: str) -> str:
    value = metadata.get(key, "")
    return value[0] if isinstance(value, list) else value


async def _end_diffcopy(call: Any, stream: PacketStream) -> None:
    """A finished DiffCopy's last exchange: the sender's FIN, then our end of the call."""
    try:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stream.recv(), 10)
        await call.done_writing()
    except grpc.aio.AioRpcError:
        pass  # the files are in; a client that left meanwhile changes nothing
    finally:
        call.cancel()


class Session:
    def __init__(self, session_id: str, name: str, shared_key: str, methods: set[str],
                 channel: grpc.aio.Channel, loop: asyncio.AbstractEventLoop) -> None:
        self.id = session_id
        self.name = name
        self.shared_key = shared_key
        self.methods = methods
        self.channel = channel
        self.loop = loop
        self.closed = asyncio.Event()
        self._agents: dict[str, Path] = {}
        self._agent_servers: list[asyncio.AbstractServer] = []
        self._agent_dir: Path | None = None
        self._endings: set[asyncio.Future[None]] = set()  # transfers whose FIN is still on its way

    def supports(self, method: str) -> bool:
        return method.lower() in self.methods

    def _require(self, method: str, what: str) -> None:
        if not self.supports(method):
            raise SessionError(f"the client does not offer {what} ({method})")

    # -- providers the worker uses ---------------------------------------------------------

    def providers(self, scratch: Path | None = None) -> Providers:
        """One build's providers; `scratch` is the daemon's directory for the build's copies of
        the client's files (under its root, wiped at start-up), else the system's temp dir."""
        files = self.supports(svc.FILESYNC_DIFFCOPY)
        return Providers(locals=SessionLocals(self) if files else None,
                         secrets=SessionSecrets(self), ssh=SessionSSH(self), credentials=SessionCredentials(self),
                         oci_stores=SessionOCIStores(self, scratch) if files else None)

    def _blocking(self, coro: Any) -> Any:
        """Run `coro` on the daemon loop from a worker thread and wait for it."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise RuntimeError("a session call was made from the event loop thread; run it in a thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def diffcopy(self, request: LocalSyncRequest, dest: Path, known: frozenset[bytes] | None = None,
                       known_walk: str = ""):
        """`known`, `known_walk`: the entries and walk digest of the listing `dest` last
        received (see receive_tree)."""
        self._require(svc.FILESYNC_DIFFCOPY, "local files")
        metadata = [(svc.KEY_DIR_NAME, request.name)]
        metadata += [(svc.KEY_INCLUDE, p) for p in request.include_patterns]
        metadata += [(svc.KEY_EXCLUDE, p) for p in request.exclude_patterns]
        metadata += [(svc.KEY_FOLLOW, p) for p in request.follow_paths]
        method, batched = method_for(svc.FILESYNC_DIFFCOPY, self.supports)
        if batched and known_walk:
            metadata.append((svc.KEY_KNOWN_WALK, known_walk))
        else:
            known_walk = ""
        call = self.channel.stream_stream(method, request_serializer=serialize,
                                          response_deserializer=message_type(batched).FromString)(metadata=metadata)
        stream = PacketStream(call.read, call.write, batched=batched)
        try:
            stats = await receive_tree(dest, stream, known=known, known_walk=known_walk)
        except grpc.aio.AioRpcError as exc:
            call.cancel()
            raise SessionError(f"transferring local directory {request.name!r} from the client failed: "
                               f"{exc.details() or exc.code().name}") from None
        except BaseException:
            call.cancel()
            raise
        # every file is in: the sender's answering FIN and the call's end are awaited beside
        # the build, not in its way (a round trip through the session, three times a build)
        ending = asyncio.ensure_future(_end_diffcopy(call, stream))
        self._endings.add(ending)
        ending.add_done_callback(self._endings.discard)
        return stats

    async def get_secret(self, secret_id: str) -> bytes | None:
        if not self.supports(svc.SECRETS_GET):
            return None
        method = self.channel.unary_unary(svc.SECRETS_GET, request_serializer=spb.GetSecretRequest.SerializeToString,
                                          response_deserializer=spb.GetSecretResponse.FromString)
        try:
            return (await method(spb.GetSecretRequest(ID=secret_id))).data
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise SessionError(f"secret {secret_id}: the client failed to send it: {exc.details()}") from None

    async def credentials(self, host: str) -> tuple[str, str] | None:
        if not self.supports(svc.AUTH_CREDENTIALS):
            return None
        method = self.channel.unary_unary(svc.AUTH_CREDENTIALS,
                                          request_serializer=spb.CredentialsRequest.SerializeToString,
                                          response_deserializer=spb.CredentialsResponse.FromString)
        try:
            resp = await method(spb.CredentialsRequest(Host=host))
        except grpc.aio.AioRpcError:
            return None
        return (resp.Username, resp.Secret) if resp.Username or resp.Secret else None

    async def fetch_token(self, host: str, realm: str, service: str, scopes: Sequence[str]) -> Token | None:
        """A bearer token the client fetched with its own credentials (Auth.FetchToken, as buildctl
        answers it); None when the client does not offer it or failed, and the daemon then
        fetches the token itself with what Credentials gives."""
        if not self.supports(svc.AUTH_FETCH_TOKEN):
            return None
        method = self.channel.unary_unary(svc.AUTH_FETCH_TOKEN,
                                          request_serializer=spb.FetchTokenRequest.SerializeToString,
                                          response_deserializer=spb.FetchTokenResponse.FromString)
        try:
            resp = await method(spb.FetchTokenRequest(ClientID=TOKEN_CLIENT_ID, Host=host, Realm=realm,
                                                      Service=service, Scopes=list(scopes)))
        except grpc.aio.AioRpcError as exc:
            log.debug("session %s: FetchToken for %s failed (%s); fetching it here", self.id, host, exc.details())
            return None
        return Token(resp.Token, resp.ExpiresIn or DEFAULT_EXPIRES_IN, resp.IssuedAt) if resp.Token else None

    async def agent_socket(self, agent_id: str) -> Path | None:
        """A unix socket in the daemon; each connection is one ForwardAgent stream to the client."""
        agent_id = agent_id or "default"
        if not (self.supports(svc.SSH_CHECK) and self.supports(svc.SSH_FORWARD)):
            return None
        check = self.channel.unary_unary(svc.SSH_CHECK, request_serializer=spb.CheckAgentRequest.SerializeToString,
                                         response_deserializer=spb.CheckAgentResponse.FromString)
        try:  # asked for every mount, as BuildKit does: the client may have dropped the agent since
            await check(spb.CheckAgentRequest(ID="" if agent_id == "default" else agent_id))
        except grpc.aio.AioRpcError:
            return None
        if agent_id in self._agents:
            return self._agents[agent_id]
        if self._agent_dir is None:
            self._agent_dir = Path(tempfile.mkdtemp(prefix="pbk-ssh-"))
        path = self._agent_dir / f"{len(self._agents)}.sock"

        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            call = self.channel.stream_stream(svc.SSH_FORWARD, request_serializer=spb.BytesMessage.SerializeToString,
                                              response_deserializer=spb.BytesMessage.FromString)(
                metadata=[(svc.KEY_SSH_ID, agent_id)])

            async def downstream() -> None:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    while (msg := await call.read()) is not grpc.aio.EOF:
                        writer.write(msg.data)
                        await writer.drain()

            task = asyncio.ensure_future(downstream())
            try:
                while data := await reader.read(1 << 16):
                    await call.write(spb.BytesMessage(data=data))
                await call.done_writing()
                await asyncio.wait_for(task, 30)
            except (grpc.aio.AioRpcError, asyncio.TimeoutError, ConnectionError):
                pass
            finally:
                task.cancel()
                call.cancel()
                writer.close()

        self._agent_servers.append(await asyncio.start_unix_server(forward, str(path)))
        self._agents[agent_id] = path
        return path

    # -- outputs written on the client ---------------------------------------------------

    async def send_directory(self, exporter_id: int, root: Path) -> None:
        """FileSend for `local`: the roles of FileSync reversed (the daemon sends the tree)."""
        self._require(svc.FILESEND_DIFFCOPY, "a place for the outputs")
        method, batched = method_for(svc.FILESEND_DIFFCOPY, self.supports)
        call = self.channel.stream_stream(method, request_serializer=serialize,
                                          response_deserializer=message_type(batched).FromString)(
            metadata=[(svc.KEY_EXPORTER_ID, str(exporter_id))])
        try:
            await send_tree(root, WalkOptions(), PacketStream(call.read, call.write, batched=batched))
            await call.done_writing()
            code = await asyncio.wait_for(call.code(), 60)
            if code != grpc.StatusCode.OK:
                raise SessionError(f"the client failed to write the output: {await call.details()}")
        except grpc.aio.AioRpcError as exc:
            raise SessionError(f"sending the output to the client failed: {exc.details() or exc.code().name}") from None

    def open_file_send(self, exporter_id: int, exporter_metadata: Mapping[str, str] | None = None) -> "FileSendWriter":
        """`exporter_metadata`: the exporter's response so far, sent as `exporter-md-*` call
        metadata (BuildKit's CopyFileWriter), for a client that names or checks the file by it."""
        self._require(svc.FILESEND_DIFFCOPY, "a place for the outputs")
        return FileSendWriter(self, exporter_id, exporter_metadata or {})

    async def close(self) -> None:
        self.closed.set()
        for ending in list(self._endings):
            ending.cancel()
        for server in self._agent_servers:
            server.close()
        if self._agent_dir is not None:
            shutil.rmtree(self._agent_dir, ignore_errors=True)
        await self.channel.close()


class MessageGatherer:
    """An exporter's writes as FileSend messages of FILE_SEND_CHUNK up to twice that: small
    writes wait and are joined; a write of a chunk or more while nothing waits leaves as it is,
    so the blob copies of an image export (a chunk a write) are never copied here."""

    def __init__(self, chunk: int = FILE_SEND_CHUNK) -> None:
        self.chunk = chunk
        self._pending = bytearray()

    def add(self, data: bytes | memoryview) -> list[bytes]:
        """The messages ready to send after `data`."""
        if self._pending or len(data) < self.chunk:
            self._pending += data
            if len(self._pending) < self.chunk:
                return []
            data = bytes(self._pending)
            self._pending.clear()
        view = memoryview(data)
        messages = []
        while len(view) >= 2 * self.chunk:
            messages.append(bytes(view[:self.chunk]))
            view = view[self.chunk:]
        messages.append(data if isinstance(data, bytes) and len(view) == len(data) else bytes(view))
        return messages

    def rest(self) -> bytes:
        """What still waits, for the last message."""
        data = bytes(self._pending)
        self._pending.clear()
        return data


class FileSendWriter:
    """A file object for exporters running in a thread: writes become BytesMessages gathered
    by MessageGatherer, the last one sent by finish()."""

    def __init__(self, session: Session, exporter_id: int, exporter_metadata: Mapping[str, str]) -> None:
        self._session = session
        metadata = [(svc.KEY_EXPORTER_ID, str(exporter_id))]
        metadata += [(svc.EXPORTER_MD_PREFIX + key, value) for key, value in exporter_metadata.items()]
        self._call = session.channel.stream_stream(
            svc.FILESEND_DIFFCOPY, request_serializer=spb.BytesMessage.SerializeToString,
            response_deserializer=spb.BytesMessage.FromString)(metadata=metadata)
        self.written = 0
        self._gather = MessageGatherer()

    def write(self, data: bytes | memoryview) -> int:
        size = len(memoryview(data))
        for chunk in self._gather.add(data):
            asyncio.run_coroutine_threadsafe(self._call.write(spb.BytesMessage(data=chunk)), self._session.loop).result()
        self.written += size
        return size

    def flush(self) -> None:
        pass  # finish() sends what is gathered: a message per flush would undo the gathering

    def abort(self) -> None:
        """End the call unfinished: the client keeps no partial output."""
        self._call.cancel()

    async def finish(self) -> None:
        try:
            if rest := self._gather.rest():
                await self._call.write(spb.BytesMessage(data=rest))
            await self._call.done_writing()
            code = await asyncio.wait_for(self._call.code(), 60)
            if code != grpc.StatusCode.OK:
                raise SessionError(f"the client failed to write the output: {await self._call.details()}")
        except grpc.aio.AioRpcError as exc:
            raise SessionError(f"sending the output to the client failed: {exc.details() or exc.code().name}") from None


class SessionLocals:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.shared_key = session.shared_key

    def sync(self, request: LocalSyncRequest, dest: Path, known: frozenset[bytes] | None = None,
             known_walk: str = ""):
        return self.session._blocking(self.session.diffcopy(request, dest, known, known_walk))


class SessionOCIStores:
    """`--oci-layout NAME=DIR` of the client: the layout is copied once per build, through the
    same file sync as the build context, into a private directory the worker reads, under the
    daemon's root; `close` removes the copies when the build ends."""

    def __init__(self, session: Session, scratch: Path | None = None) -> None:
        self.session = session
        self.scratch = scratch
        self._copies: dict[str, Path] = {}

    def layout_dir(self, store_id: str) -> Path | None:
        if store_id not in self._copies:
            dest = Path(tempfile.mkdtemp(prefix="oci-layout-", dir=self.scratch))
            try:
                SessionLocals(self.session).sync(LocalSyncRequest(OCI_LAYOUT_DIR_PREFIX + store_id), dest)
            except BuildError:  # the client has no layout of that name
                shutil.rmtree(dest, ignore_errors=True)
                return None
            self._copies[store_id] = dest
        return self._copies[store_id]

    def close(self) -> None:
        for copy in self._copies.values():
            shutil.rmtree(copy, ignore_errors=True)
        self._copies.clear()


class SessionSecrets:
    def __init__(self, session: Session) -> None:
        self.session = session

    async def get_secret(self, secret_id: str) -> bytes | None:
        return await self.session.get_secret(secret_id)


class SessionSSH:
    def __init__(self, session: Session) -> None:
        self.session = session

    async def agent_socket(self, agent_id: str) -> Path | None:
        return await self.session.agent_socket(agent_id)


class SessionCredentials:
    def __init__(self, session: Session) -> None:
        self.session = session

    async def credentials(self, host: str) -> tuple[str, str] | None:
        return await self.session.credentials(host)

    async def fetch_token(self, host: str, realm: str, service: str, scopes: Sequence[str]) -> Token | None:
        return await self.session.fetch_token(host, realm, service, scopes)


class SessionManager:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._arrived: dict[str, asyncio.Event] = {}

    def _event(self, session_id: str) -> asyncio.Event:
        return self._arrived.setdefault(session_id, asyncio.Event())

    async def get(self, session_id: str, timeout: float = 5.0) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            try:
                await asyncio.wait_for(self._event(session_id).wait(), timeout)
            except asyncio.TimeoutError:
                raise SessionError(f"no active session {session_id}: the client did not open it",
                                   hint="the client must call Control.Session with this id") from None
            session = self._sessions[session_id]
        return session

    async def handle(self, requests: AsyncIterator[bytes], metadata: Mapping[str, Any]) -> AsyncIterator[bytes]:
        session_id = _first(metadata, svc.HEADER_UUID)
        if not session_id:
            raise SessionError(f"session without {svc.HEADER_UUID}")
        methods = metadata.get(svc.HEADER_METHOD, [])
        methods = {m.lower() for m in (methods if isinstance(methods, list) else [methods])}
        outgoing = Outbox()
        dialed = DialedChannel(requests, outgoing.put)
        channel = await dialed.start()
        session = Session(session_id, _first(metadata, svc.HEADER_NAME), _first(metadata, svc.HEADER_SHARED_KEY),
                          methods, channel, asyncio.get_running_loop())
        self._sessions[session_id] = session
        self._event(session_id).set()
        asyncio.ensure_future(channel.channel_ready())  # connect now: the pump starts on accept
        watchdog = asyncio.ensure_future(self._watch(session, dialed, outgoing))
        try:
            async for data in outgoing.messages():
                yield data
        finally:
            watchdog.cancel()
            self._sessions.pop(session_id, None)
            self._arrived.pop(session_id, None)
            await session.close()
            await dialed.close()

    async def _watch(self, session: Session, dialed: DialedChannel, outgoing: Outbox) -> None:
        """Health-check the client while it is connected; a failed check or the stream ending
        ends the session."""
        check = session.channel.unary_unary(
            svc.HEALTH_CHECK, request_serializer=spb.HealthCheckRequest.SerializeToString,
            response_deserializer=spb.HealthCheckResponse.FromString)
        try:
            while not dialed.done.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(dialed.done.wait(), HEALTH_INTERVAL)
                if dialed.done.is_set() or not session.supports(svc.HEALTH_CHECK):
                    continue
                try:
                    await check(spb.HealthCheckRequest(), timeout=HEALTH_TIMEOUT)
                except grpc.aio.AioRpcError as exc:
                    log.info("session %s: health check failed (%s); closing it", session.id, exc.code().name)
                    break
        finally:
            outgoing.close()
