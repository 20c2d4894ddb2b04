"""An async registry client (OCI distribution API) for pulls and pushes.

Auth follows the challenge a registry sends: anonymous first, then basic or a bearer token
(fetched by the building client over its session, else from the realm with the basic credentials
we have), cached per scope. Registries
on loopback that answer HTTPS with plain HTTP are retried over HTTP, never on a certificate
error, as containerd does.
"""
from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.platforms import Platform
from pybuildkit.worker.asyncutil import gather_or_cancel
from pybuildkit.worker.content.store import ContentStore, Descriptor
from pybuildkit.worker.registry.auth import CredentialProvider, TokenCache, basic_header, parse_challenge
from pybuildkit.worker.registry.hosts import Endpoint, RegistryHosts
from pybuildkit.worker.registry.httpclient import httpx
from pybuildkit.worker.registry.reference import Reference
from pybuildkit.worker.registry.token import Token, TokenError, fetch_token

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)
CHUNK = 8 << 20  # one PATCH of a blob push
PIECE = 1 << 20  # what is read from the blob file and written at a time
RETRIES = 5
#: the longest an Authorization header is reused, whatever lifetime its token has
TOKEN_REUSE_LIMIT = 3600.0


@dataclass(frozen=True)
class _BlobRange:
    """A request body of `length` bytes of an open blob file from `offset`, read a piece at a time.

    httpx keeps a sent request, and so a bytes body, in a reference cycle with its response:
    8 MiB chunks lingered until a full garbage collection, ten of them at once in a 300 MB
    push. A piece here is dropped once written. Not a generator, so that a request httpx sends
    again (after a 401) reads the range again."""

    handle: BinaryIO
    offset: int
    length: int

    async def __aiter__(self) -> AsyncIterator[bytes]:
        fd = self.handle.fileno()
        done = 0
        while done < self.length:
            piece = await asyncio.to_thread(os.pread, fd, min(PIECE, self.length - done), self.offset + done)
            if not piece:
                raise _Retryable(f"blob file ended {self.length - done} bytes early")
            done += len(piece)
            yield piece


class RegistryError(BuildError):
    def __init__(self, message: str, *, host: str, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint=hint)
        self.host = host
        self.status = status


class _Retryable(Exception):
    pass


def _is_certificate_error(exc: Exception) -> bool:
    cause = exc.__cause__ or exc.__context__
    return isinstance(exc, ssl.SSLCertVerificationError) or isinstance(cause, ssl.SSLCertVerificationError) or "certificate verify failed" in str(exc).lower()


def _certificate_error(host: str, exc: Exception) -> RegistryError:
    """A certificate we cannot verify is never retried: it names the registry and the two
    pybuildkitd.toml keys that fix it."""
    key = "docker.io" if host == "registry-1.docker.io" else host
    cause = exc if isinstance(exc, ssl.SSLCertVerificationError) else (exc.__cause__ or exc.__context__)
    reason = getattr(cause, "verify_message", "") or str(exc)
    return RegistryError(
        f"failed to do request to {host}: tls: failed to verify certificate: {reason}", host=host,
        hint=f'trust its CA with [registry."{key}"] ca = ["/path/to/ca.pem"] in pybuildkitd.toml, or set '
             f'insecure = true there (registry.insecure=true on an image output skips it for one push)')


def _with_mirror_errors(final: RegistryError, mirrors: list[RegistryError]) -> RegistryError:
    """The upstream's error alone would hide why the configured mirror did not serve the pull."""
    if not mirrors:
        return final
    told = "; ".join(f"mirror {m.host}: {m.message}" for m in mirrors)
    hints = [h for h in (final.hint, *(m.hint for m in mirrors)) if h]
    return RegistryError(f"{final.message} (after {told})", host=final.host,
                         hint=hints[0] if hints else None, status=final.status)


@dataclass
class ResolvedImage:
    ref: Reference
    root_digest: str
    manifest_digest: str
    manifest: dict
    config: dict
    config_digest: str
    layers: list[Descriptor]
    media_type: str


def _matches(candidate: dict, want: Platform) -> int:
    """0 = no match; higher = better (exact variant beats a compatible one)."""
    p = Platform(candidate.get("os", ""), candidate.get("architecture", ""), candidate.get("variant", "")).normalized()
    w = want.normalized()
    if p.os != w.os or p.architecture != w.architecture:
        return 0
    if p.variant == w.variant:
        return 3
    if w.architecture == "arm" and p.variant and w.variant and p.variant < w.variant:
        return 2
    return 0


class RegistryClient:
    def __init__(self, hosts: RegistryHosts, credentials: CredentialProvider, store: ContentStore, *,
                 user_agent: str = "pybuildkit") -> None:
        self.hosts = hosts
        self.credentials = credentials
        self.store = store
        self.user_agent = user_agent
        self._had_credentials: dict[str, bool] = {}
        self._clients: dict[tuple, httpx.AsyncClient] = {}
        self._tokens = TokenCache()
        self._http_fallback: set[str] = set()
        self._fetch_locks: dict[str, asyncio.Lock] = {}
        self._pushed: dict[tuple[str, str], str] = {}  # (host, digest) -> a repository that has it
        self._system_tls: ssl.SSLContext | None = None  # see prepare_tls
        self._system_tls_lock = threading.Lock()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def prepare_tls(self) -> ssl.SSLContext:
        """The TLS context of registries verified against the system's CAs, made once: in a
        thread from the daemon's start, beside its first build (parsing the CA bundle is ~25 ms,
        mostly outside the interpreter lock), since every client needs it, also one that speaks
        plain HTTP (a redirect may lead to HTTPS). A build that comes sooner waits for it here."""
        with self._system_tls_lock:
            if self._system_tls is None:
                self._system_tls = httpx.create_ssl_context()  # what httpx makes for verify=True
            return self._system_tls

    def _client(self, endpoint: Endpoint) -> httpx.AsyncClient:
        key = (endpoint.verify, endpoint.cert)
        client = self._clients.get(key)
        if client is None:
            verify: bool | str | ssl.SSLContext = endpoint.verify
            if verify is True and endpoint.cert is None:  # httpx loads client certificates into it
                verify = self.prepare_tls()
            client = httpx.AsyncClient(verify=verify, cert=endpoint.cert, follow_redirects=True,
                                       timeout=httpx.Timeout(60, connect=10),
                                       limits=httpx.Limits(max_connections=32),
                                       headers={"User-Agent": self.user_agent})
            self._clients[key] = client
        return client

    # ------------------------------------------------------------------ requests with auth

    async def _send(self, endpoint: Endpoint, method: str, url: str, *, scope: str,
                    stream: bool = False, **kwargs) -> httpx.Response:
        host = endpoint.host
        if host in self._http_fallback and url.startswith("https://"):
            url = "http://" + url[len("https://"):]
        client = self._client(endpoint)
        headers = dict(kwargs.pop("headers", {}))
        # tokens belong to whoever's credentials fetched them: one build's client never rides
        # on a token another client's credentials earned
        token_key = f"{host}|{_credential_owner()}"
        cached = self._tokens.get(token_key, scope)
        if cached:
            headers["Authorization"] = cached
        for attempt in range(2):
            try:
                request = client.build_request(method, url, headers=headers, **kwargs)
                response = await client.send(request, stream=stream)
            except (httpx.ConnectError, ssl.SSLError) as exc:
                # httpx 0.23 lets some handshake failures through as bare ssl errors
                if self._is_http_answer(exc) and endpoint.allow_http_fallback and url.startswith("https://"):
                    self._http_fallback.add(host)
                    url = "http://" + url[len("https://"):]
                    continue
                if _is_certificate_error(exc):
                    raise _certificate_error(host, exc) from None
                raise _Retryable(f"cannot connect to {host}: {exc}") from exc
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.TimeoutException) as exc:
                raise _Retryable(f"connection to {host} failed: {type(exc).__name__}: {exc}") from exc
            if response.status_code != 401 or attempt == 1:
                return response
            challenge = response.headers.get("WWW-Authenticate", "")
            if stream:
                await response.aclose()
            granted = await self._authorize(endpoint, challenge, scope)
            if granted is None:
                return response
            auth, lifetime = granted
            headers["Authorization"] = auth
            self._tokens.put(token_key, scope, auth, lifetime)
            if "content" in kwargs and hasattr(kwargs["content"], "seek"):
                kwargs["content"].seek(0)
        return response

    @staticmethod
    def _is_http_answer(exc: Exception) -> bool:
        text = str(exc).lower()
        cause = exc.__cause__ or exc.__context__
        return "wrong version number" in text or "http request" in text or (
            isinstance(cause, ssl.SSLError) and "wrong version number" in str(cause).lower())

    async def _authorize(self, endpoint: Endpoint, challenge: str, scope: str) -> tuple[str, float] | None:
        """The Authorization header answering `challenge` and how long to reuse it. A bearer
        token is asked of the building client first (its session's Auth.FetchToken, so its
        password stays with it), else fetched here with the credentials it or the daemon has."""
        parsed = parse_challenge(challenge)
        if parsed.scheme == "basic":
            creds = await self._credentials(endpoint.host)
            return (basic_header(*creds), TOKEN_REUSE_LIMIT) if creds else None
        if parsed.scheme != "bearer" or "realm" not in parsed.params:
            return None
        realm, service, scopes = parsed.params["realm"], parsed.params.get("service", ""), [scope] if scope else []
        token = await self._client_token(endpoint.host, realm, service, scopes)
        if token is None:
            try:
                token = await fetch_token(self._client(endpoint), host=endpoint.host, realm=realm, service=service,
                                          scopes=scopes, credentials=await self._credentials(endpoint.host))
            except TokenError as exc:
                raise RegistryError(exc.message, host=endpoint.host, hint=exc.hint) from exc
        if not token.token:
            return None
        return f"Bearer {token.token}", min(max(token.expires_in - 5, 1), TOKEN_REUSE_LIMIT)

    async def _client_token(self, host: str, realm: str, service: str, scopes: list[str]) -> Token | None:
        """A token fetched by the building client, or None when it cannot (no session, an older
        client, or a realm it cannot reach: then the daemon fetches it with the credentials)."""
        from pybuildkit.worker.providers import build_credentials, maybe_await

        fetch = getattr(build_credentials.get(), "fetch_token", None)
        if fetch is None:
            return None
        return await maybe_await(fetch(host, realm, service, scopes))

    async def _credentials(self, host: str) -> tuple[str, str] | None:
        """The building client's credentials (its session) first, then the daemon's own."""
        from pybuildkit.worker.providers import build_credentials, maybe_await

        found = None
        for provider in (build_credentials.get(), self.credentials):
            if provider is not None:
                found = await maybe_await(provider.credentials(host))
                if found:
                    break
        self._had_credentials[host] = bool(found)
        return found or None

    def _auth_error(self, endpoint: Endpoint, response: httpx.Response) -> RegistryError:
        has_creds = self._had_credentials.get(endpoint.host, False)
        hint = (f"check the credentials for {endpoint.host} in your docker config (~/.docker/config.json)"
                if has_creds else f"log in to {endpoint.host} (no credentials found for it)")
        return RegistryError(f"failed to authorize: {response.status_code} {response.reason_phrase} from "
                             f"{endpoint.host}", host=endpoint.host, hint=hint, status=response.status_code)

    async def _retrying(self, what: str, host: str, fn):
        delay = 0.2
        for attempt in range(RETRIES):
            try:
                return await fn()
            except _Retryable as exc:
                if attempt == RETRIES - 1:
                    raise RegistryError(f"{what}: {exc}", host=host) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)

    # ------------------------------------------------------------------ pulling

    async def _get_manifest(self, endpoints: list[Endpoint], ref: Reference, obj: str) -> tuple[Endpoint, bytes, str]:
        last: RegistryError | None = None
        mirror_errors: list[RegistryError] = []  # a mirror lacking the image is normal; other failures are news
        for endpoint in endpoints:
            url = f"{endpoint.base_url}/v2/{ref.path}/manifests/{obj}"

            async def once(endpoint=endpoint, url=url) -> httpx.Response:
                response = await self._send(endpoint, "GET", url, scope=f"repository:{ref.path}:pull",
                                            headers={"Accept": ACCEPT})
                if response.status_code >= 500:
                    raise _Retryable(f"{response.status_code} from {endpoint.host}")
                return response

            try:
                response = await self._retrying(f"fetching manifest {ref}", endpoint.host, once)
            except RegistryError as exc:
                last = exc
            else:
                if response.status_code == 200:
                    media = response.headers.get("Content-Type", "").split(";")[0]
                    return endpoint, response.content, media
                if response.status_code in (401, 403):
                    last = self._auth_error(endpoint, response)
                elif response.status_code == 404:
                    last = RegistryError(f"{ref}: not found", host=endpoint.host, status=404)
                else:
                    last = RegistryError(f"unexpected status {response.status_code} fetching {ref} from "
                                         f"{endpoint.host}", host=endpoint.host, status=response.status_code)
            if endpoint.is_mirror:
                if last.status != 404:
                    mirror_errors.append(last)
                continue
            break
        assert last is not None
        raise _with_mirror_errors(last, [m for m in mirror_errors if m is not last])

    async def resolve(self, ref: Reference, platform: Platform | None) -> ResolvedImage:
        endpoints = self.hosts.endpoints(ref.domain)
        endpoint, data, media = await self._get_manifest(endpoints, ref, ref.object)
        doc = json.loads(data)
        media = doc.get("mediaType") or media
        root_digest = self.store.put_bytes(data)
        if ref.digest and ref.digest != root_digest:
            raise RegistryError(f"{ref}: manifest digest mismatch ({root_digest})", host=endpoint.host)
        manifest_digest, manifest = root_digest, doc
        if media in INDEX_TYPES or "manifests" in doc:
            want = platform or Platform()
            ranked = sorted(((_matches(m.get("platform", {}), want), i, m) for i, m in enumerate(doc["manifests"])),
                            key=lambda t: (-t[0], t[1]))
            if not ranked or ranked[0][0] == 0:
                available = ", ".join(str(Platform(m.get("platform", {}).get("os", ""),
                                                   m.get("platform", {}).get("architecture", ""),
                                                   m.get("platform", {}).get("variant", "")))
                                      for m in doc["manifests"])
                raise RegistryError(f"{ref}: no match for platform {want} in manifest list (has {available})",
                                    host=endpoint.host)
            chosen = ranked[0][2]
            if self.store.has(chosen["digest"]):  # content-addressed, and this client just read its index
                mdata, media = self.store.read_bytes(chosen["digest"]), chosen.get("mediaType", media)
            else:
                _, mdata, media = await self._get_manifest([endpoint], ref, chosen["digest"])
            manifest_digest = self.store.put_bytes(mdata, expected=chosen["digest"])
            manifest = json.loads(mdata)
            media = manifest.get("mediaType") or chosen.get("mediaType", media)
        config_desc = Descriptor.from_json(manifest["config"])
        await self.fetch_blob(ref, config_desc)
        config = json.loads(self.store.read_bytes(config_desc.digest))
        layers = [Descriptor.from_json(layer) for layer in manifest.get("layers", [])]
        return ResolvedImage(ref, root_digest, manifest_digest, manifest, config, config_desc.digest, layers, media)

    async def fetch_blob(self, ref: Reference, desc: Descriptor,
                         progress: Callable[[int, int], None] | None = None) -> None:
        lock = self._fetch_locks.setdefault(desc.digest, asyncio.Lock())
        async with lock:
            if self.store.has(desc.digest):
                return
            last: RegistryError | None = None
            mirror_errors: list[RegistryError] = []
            for endpoint in self.hosts.endpoints(ref.domain):
                try:
                    await self._retrying(f"fetching {desc.digest}", endpoint.host,
                                         lambda endpoint=endpoint: self._fetch_once(endpoint, ref, desc, progress))
                    return
                except RegistryError as exc:
                    last = exc
                    if endpoint.is_mirror and exc.status != 404:
                        mirror_errors.append(exc)
            if last is None:
                raise RegistryError(f"cannot fetch {desc.digest}", host=ref.domain)
            raise _with_mirror_errors(last, [m for m in mirror_errors if m is not last])

    async def _fetch_once(self, endpoint: Endpoint, ref: Reference, desc: Descriptor, progress) -> None:
        url = f"{endpoint.base_url}/v2/{ref.path}/blobs/{desc.digest}"
        response = await self._send(endpoint, "GET", url, scope=f"repository:{ref.path}:pull", stream=True)
        try:
            if response.status_code >= 500:
                raise _Retryable(f"{response.status_code} from {endpoint.host}")
            if response.status_code in (401, 403):
                raise self._auth_error(endpoint, response)
            if response.status_code != 200:
                raise RegistryError(f"fetching {desc.digest}: {response.status_code} from {endpoint.host}",
                                    host=endpoint.host, status=response.status_code)
            with self.store.writer(expected=desc.digest, size=desc.size or None) as writer:
                try:
                    async for chunk in response.aiter_bytes(1 << 20):
                        writer.write(chunk)
                        if progress:
                            progress(writer.written, desc.size)
                except (httpx.ReadError, httpx.RemoteProtocolError, httpx.TimeoutException) as exc:
                    raise _Retryable(str(exc)) from exc
                await asyncio.to_thread(writer.commit)
        finally:
            await response.aclose()

    # ------------------------------------------------------------------ pushing

    async def push(self, targets: Sequence[Reference], root: Descriptor, *, progress=None,
                   hosts: RegistryHosts | None = None) -> None:
        blobs, manifests = self._walk(root)
        by_registry: dict[str, list[Reference]] = {}
        for target in targets:
            by_registry.setdefault(target.domain, []).append(target)

        async def one_registry(group: list[Reference]) -> None:
            # repositories of one registry go one after the other, so later ones mount the blobs
            for target in group:
                await self._push_one(target, root, blobs, manifests, hosts or self.hosts)

        await gather_or_cancel(*(one_registry(group) for group in by_registry.values()))

    def _walk(self, root: Descriptor) -> tuple[list[Descriptor], list[tuple[Descriptor, bytes]]]:
        blobs: dict[str, Descriptor] = {}
        manifests: list[tuple[Descriptor, bytes]] = []

        def visit(desc: Descriptor) -> None:
            data = self.store.read_bytes(desc.digest)
            doc = json.loads(data)
            for child in doc.get("manifests", []):
                visit(Descriptor.from_json(child))
            if "config" in doc:
                config = Descriptor.from_json(doc["config"])
                blobs[config.digest] = config
            for layer in doc.get("layers", []):
                d = Descriptor.from_json(layer)
                blobs[d.digest] = d
            manifests.append((desc, data))

        visit(root)
        return list(blobs.values()), manifests

    async def _push_one(self, target: Reference, root: Descriptor, blobs: list[Descriptor],
                        manifests: list[tuple[Descriptor, bytes]], hosts: RegistryHosts) -> None:
        endpoint = hosts.endpoints(target.domain, for_push=True)[-1]
        scope = f"repository:{target.path}:pull,push"
        limit = asyncio.Semaphore(4)

        async def blob(desc: Descriptor) -> None:
            async with limit:
                await self._retrying(f"pushing {desc.digest} to {target.repository}", endpoint.host,
                                     lambda: self._upload_blob(endpoint, target, desc, scope))

        await gather_or_cancel(*(blob(d) for d in blobs))
        for desc, data in manifests:
            tag = desc.digest
            if desc.digest == root.digest and target.tag and not target.digest:
                tag = target.tag
            await self._retrying(f"pushing manifest {desc.digest}", endpoint.host,
                                 lambda desc=desc, data=data, tag=tag: self._put_manifest(endpoint, target, desc, data, tag, scope))

    async def _upload_blob(self, endpoint: Endpoint, target: Reference, desc: Descriptor, scope: str) -> None:
        base = f"{endpoint.base_url}/v2/{target.path}/blobs"
        head = await self._send(endpoint, "HEAD", f"{base}/{desc.digest}", scope=scope)
        if head.status_code == 200:
            self._pushed[(endpoint.host, desc.digest)] = target.path
            return
        self._check(endpoint, head, allow=(404,))
        source_repo = self._pushed.get((endpoint.host, desc.digest))
        if source_repo is not None and source_repo != target.path:
            # cross-repository mount: the registry links the blob instead of receiving it again
            mounted = await self._send(endpoint, "POST", f"{base}/uploads/", scope=scope,
                                       params={"mount": desc.digest, "from": source_repo})
            if mounted.status_code == 201:
                return
            start = mounted
        else:
            start = await self._send(endpoint, "POST", f"{base}/uploads/", scope=scope)
        self._check(endpoint, start, allow=(202,))
        location = self._absolute(endpoint, start.headers["Location"])
        size = self.store.size(desc.digest)
        with self.store.open(desc.digest) as handle:
            if size <= CHUNK:
                done = await self._send(endpoint, "PUT", location, scope=scope, params={"digest": desc.digest},
                                        content=_BlobRange(handle, 0, size), headers={
                                            "Content-Type": "application/octet-stream",
                                            "Content-Length": str(size)})
                self._check(endpoint, done, allow=(201,))
                self._pushed[(endpoint.host, desc.digest)] = target.path
                return
            offset = 0
            while offset < size:
                length = min(CHUNK, size - offset)
                patch = await self._send(endpoint, "PATCH", location, scope=scope,
                                         content=_BlobRange(handle, offset, length), headers={
                                             "Content-Type": "application/octet-stream",
                                             "Content-Length": str(length),
                                             "Content-Range": f"{offset}-{offset + length - 1}"})
                self._check(endpoint, patch, allow=(202,))
                location = self._absolute(endpoint, patch.headers.get("Location", location))
                offset += length
        done = await self._send(endpoint, "PUT", location, scope=scope, params={"digest": desc.digest})
        self._check(endpoint, done, allow=(201,))
        self._pushed[(endpoint.host, desc.digest)] = target.path

    async def _put_manifest(self, endpoint: Endpoint, target: Reference, desc: Descriptor, data: bytes,
                            tag: str, scope: str) -> None:
        url = f"{endpoint.base_url}/v2/{target.path}/manifests/{tag}"
        response = await self._send(endpoint, "PUT", url, scope=scope, content=data,
                                    headers={"Content-Type": desc.media_type})
        self._check(endpoint, response, allow=(200, 201, 202))

    def _check(self, endpoint: Endpoint, response: httpx.Response, *, allow: tuple[int, ...]) -> None:
        if response.status_code in allow:
            return
        if response.status_code >= 500:
            raise _Retryable(f"{response.status_code} {response.reason_phrase} from {endpoint.host}")
        if response.status_code in (401, 403):
            raise self._auth_error(endpoint, response)
        raise RegistryError(f"unexpected status {response.status_code} {response.reason_phrase} from "
                            f"{endpoint.host}: {response.text[:300]}", host=endpoint.host, status=response.status_code)

    @staticmethod
    def _absolute(endpoint: Endpoint, location: str) -> str:
        if location.startswith("http://") or location.startswith("https://"):
            return location
        return endpoint.base_url + location


def _credential_owner() -> str:
    from pybuildkit.worker.providers import build_credentials

    provider = build_credentials.get()
    if provider is None:
        return "daemon"
    session = getattr(provider, "session", None)
    return f"session:{getattr(session, 'id', id(provider))}"
