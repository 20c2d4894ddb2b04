"""Registry credentials from a docker config file, and the auth challenge dance.

`DockerConfigCredentials` reads `$DOCKER_CONFIG/config.json` (default `~/.docker`): `auths`
entries, `credHelpers` per host and `credsStore`, calling `docker-credential-<name> get`.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pybuildkit.solver.errors import BuildError


class CredentialProvider(Protocol):
    def credentials(self, host: str) -> tuple[str, str] | None: ...


class CredentialError(BuildError):
    pass


def _config_keys(host: str) -> list[str]:
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        keys += ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
    return keys


class DockerConfigCredentials:
    def __init__(self, config_dir: Path | None = None) -> None:
        base = config_dir or Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
        self.path = base / "config.json"
        self._data: dict | None = None

    def _load(self) -> dict:
        if self._data is None:
            try:
                self._data = json.loads(self.path.read_text())
            except FileNotFoundError:
                self._data = {}
            except (OSError, json.JSONDecodeError) as exc:
                raise CredentialError(f"cannot read {self.path}: {exc}") from exc
        return self._data

    def credentials(self, host: str) -> tuple[str, str] | None:
        data = self._load()
        helper = data.get("credHelpers", {}).get(host) or data.get("credsStore")
        if helper and host in data.get("credHelpers", {}):
            return self._from_helper(helper, host)
        auths = data.get("auths", {})
        for key in _config_keys(host):
            entry = auths.get(key)
            if not entry:
                continue
            if entry.get("identitytoken"):
                return "<token>", entry["identitytoken"]
            if entry.get("auth"):
                try:
                    user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError) as exc:
                    raise CredentialError(f"{self.path}: invalid auth entry for {key}") from exc
                return user, secret
            if entry.get("username"):
                return entry["username"], entry.get("password", "")
        if helper:
            return self._from_helper(helper, host)
        return None

    def _from_helper(self, helper: str, host: str) -> tuple[str, str] | None:
        program = f"docker-credential-{helper}"
        try:
            proc = subprocess.run([program, "get"], input=host.encode(), capture_output=True, timeout=30)
        except FileNotFoundError:
            raise CredentialError(f"credential helper {program} not found (configured in {self.path})") from None
        if proc.returncode != 0:
            if b"credentials not found" in proc.stdout.lower() + proc.stderr.lower():
                return None
            raise CredentialError(f"{program} get failed for {host}: {proc.stderr.decode(errors='replace').strip()}")
        data = json.loads(proc.stdout)
        return data.get("Username", ""), data.get("Secret", "")


_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(header: str) -> Challenge:
    scheme, _, rest = header.strip().partition(" ")
    return Challenge(scheme.lower(), dict(_PARAM.findall(rest)))


@dataclass
class TokenCache:
    tokens: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)

    def get(self, host: str, scope: str) -> str | None:
        found = self.tokens.get((host, scope))
        if found and found[1] > time.monotonic():
            return found[0]
        return None

    def put(self, host: str, scope: str, token: str, expires_in: int) -> None:
        self.tokens[(host, scope)] = (token, time.monotonic() + max(expires_in - 10, 30))


def basic_header(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
