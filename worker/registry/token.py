"""Bearer tokens from a registry's token service (the distribution token protocol).

Fetched with HTTP basic credentials when there are any, anonymously otherwise. Two callers: the
daemon's registry client, and the build client answering the session's `Auth.FetchToken` (as
buildctl does), so that a client's password stays on the client and only a scoped, short-lived
token reaches the daemon.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.registry.auth import basic_header

if TYPE_CHECKING:  # imported when a token is fetched: httpx costs a daemon's start ~80 ms
    import httpx

#: the distribution spec's default lifetime when the token service does not say
DEFAULT_EXPIRES_IN = 60


class TokenError(BuildError):
    """The token service refused or could not be reached; names the registry."""


@dataclass(frozen=True)
class Token:
    token: str
    expires_in: int  # seconds
    issued_at: int = 0  # unix seconds; 0 when the service did not say


async def fetch_token(client: httpx.AsyncClient, *, host: str, realm: str, service: str, scopes: Sequence[str],
                      credentials: tuple[str, str] | None) -> Token:
    from pybuildkit.worker.registry.httpclient import httpx

    params = {"service": service, "scope": [scope for scope in scopes if scope]}  # one scope= each
    headers = {}
    if credentials and credentials[0] != "<token>":
        headers["Authorization"] = basic_header(*credentials)
    try:
        response = await client.get(realm, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise TokenError(f"failed to fetch an auth token for {host} from {realm}: {exc}") from exc
    if response.status_code != 200:
        raise TokenError(f"failed to authorize: failed to fetch token: {response.status_code} "
                         f"{response.reason_phrase} from {host}",
                         hint=f"check the credentials for {host} in your docker config")
    try:
        body = response.json()
    except ValueError:
        raise TokenError(f"failed to fetch an auth token for {host}: {realm} did not answer JSON") from None
    token = str(body.get("token") or body.get("access_token") or "")
    expires_in = body.get("expires_in")
    return Token(token, int(expires_in) if isinstance(expires_in, int) and expires_in > 0 else DEFAULT_EXPIRES_IN,
                 _unix_seconds(body.get("issued_at")))


def _unix_seconds(text: object) -> int:
    if not isinstance(text, str) or not text:
        return 0
    try:
        return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
