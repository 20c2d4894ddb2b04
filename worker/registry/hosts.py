"""Which endpoints serve a registry host: configured mirrors first, then the host itself."""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RegistryHostConfig:
    mirrors: tuple[str, ...] = ()
    http: bool = False
    insecure: bool = False
    ca: tuple[str, ...] = ()
    keypairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Endpoint:
    host: str
    scheme: str
    verify: bool | str
    is_mirror: bool
    allow_http_fallback: bool
    cert: tuple[str, str] | None = None

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"


def is_local(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:host.index("]")]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RegistryHosts:
    def __init__(self, config: Mapping[str, RegistryHostConfig]) -> None:
        self.config = dict(config)

    def _endpoint(self, host: str, *, is_mirror: bool) -> Endpoint:
        cfg = self.config.get(host, RegistryHostConfig())
        actual = "registry-1.docker.io" if host == "docker.io" else host
        verify: bool | str = True
        if cfg.insecure:
            verify = False
        elif cfg.ca:
            verify = cfg.ca[0]
        cert = cfg.keypairs[0][::-1] if cfg.keypairs else None
        return Endpoint(actual, "http" if cfg.http else "https", verify, is_mirror,
                        allow_http_fallback=not cfg.http and (is_local(host) or cfg.insecure), cert=cert)

    def endpoints(self, domain: str, *, for_push: bool = False) -> list[Endpoint]:
        cfg = self.config.get(domain, RegistryHostConfig())
        out = [] if for_push else [self._endpoint(m, is_mirror=True) for m in cfg.mirrors]
        out.append(self._endpoint(domain, is_mirror=False))
        return out

    def with_insecure(self, domain: str) -> "RegistryHosts":
        cfg = self.config.get(domain, RegistryHostConfig())
        updated = dict(self.config)
        # https first with the certificate unchecked, then plain HTTP (BuildKit's registry.insecure)
        updated[domain] = RegistryHostConfig(cfg.mirrors, cfg.http, True, cfg.ca, cfg.keypairs)
        return RegistryHosts(updated)
