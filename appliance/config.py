"""The builder's configuration, in buildkitd.toml's format (BUILDKIT-FACTS §10).

Read once at start-up into frozen dataclasses and passed down; nothing below the appliance
reads configuration files itself.
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pybuildkit.appliance.gcpolicy import GCPolicyConfig, parse_policies
from pybuildkit.solver.errors import BuildError, ConfigError
from pybuildkit.worker.registry.hosts import RegistryHostConfig

KNOWN_ENTITLEMENTS = ("network.host", "security.insecure", "device")
SNAPSHOTTERS = ("auto", "overlayfs", "fuse-overlayfs", "native")
DEFAULT_CONFIG = Path("/etc/pybuildkit/pybuildkitd.toml")


@dataclass(frozen=True)
class OCIWorkerConfig:
    enabled: bool = True
    binary: str | None = None
    snapshotter: str = "auto"
    max_parallelism: int = field(default_factory=lambda: os.cpu_count() or 2)
    rootless: bool | None = None
    no_process_sandbox: bool = False
    platforms: tuple[str, ...] = ()
    gc: bool = True
    #: `[[worker.oci.gcpolicy]]`: none means BuildKit's default policies
    gc_policies: tuple[GCPolicyConfig, ...] = ()


@dataclass(frozen=True)
class TLSConfig:
    cert: Path
    key: Path
    ca: Path | None = None


@dataclass(frozen=True)
class GRPCConfig:
    addresses: tuple[str, ...] = ()
    uid: int | None = None
    gid: int | None = None
    tls: TLSConfig | None = None


#: `[exporter.image]` keys (pybuildkit's; BuildKit has no daemon-side output defaults, buildx
#: issue 2922): applied to image/oci/docker outputs whose options do not say otherwise
IMAGE_EXPORTER_DEFAULT_KEYS = ("compression", "compression-level", "force-compression", "oci-mediatypes")


@dataclass(frozen=True)
class FrontendConfig:
    """`[frontend]`: bounds on what one Dockerfile may make the frontend do."""
    max_expansion_size: int = 1 << 20  # characters one word may gain from ${...} (shell.lex)
    time_budget: float = 30.0  # seconds one build's parse + convert may take (solver.budget)
    memory_budget: int = 512 << 20  # bytes one build's parse + convert may produce (solver.budget)


@dataclass(frozen=True)
class Config:
    root: Path
    insecure_entitlements: tuple[str, ...] = ()
    registries: Mapping[str, RegistryHostConfig] = field(default_factory=dict)
    worker: OCIWorkerConfig = field(default_factory=OCIWorkerConfig)
    grpc: GRPCConfig = field(default_factory=GRPCConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    debug: bool = False
    source: Path | None = None
    image_exporter_defaults: Mapping[str, str] = field(default_factory=dict)
    #: the namespace network of `pybuildkitd --rootless`: "slirp4netns" (isolated) or "host"
    rootless_network: str = "slirp4netns"


def default_root() -> Path:
    if os.geteuid() == 0 and not _in_userns():
        return Path("/var/lib/pybuildkit")
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "pybuildkit"


def _in_userns() -> bool:
    try:
        parts = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    return len(parts) >= 3 and parts[1] != "0"


def load_config(path: Path | None, *, root: Path | None = None) -> Config:
    """Load `path` (or the default file when it exists); `root` overrides the file's root."""
    data: dict[str, Any] = {}
    source = path
    if path is None and DEFAULT_CONFIG.exists():
        source = DEFAULT_CONFIG
    if source is not None:
        try:
            data = tomllib.loads(source.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {source} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    return parse_config(data, source=source, root=root)


#: every key buildkitd.toml may hold, per table ("" = top level); values: nested tables
KNOWN_KEYS: dict[str, set[str]] = {
    "": {"root", "debug", "trace", "insecure-entitlements", "proxyNetwork", "provenanceEnvDir",
         "log", "dns", "grpc", "otel", "cdi", "history", "worker", "registry", "frontend", "system", "exporter",
         "rootless"},
    "rootless": {"network"},
    "exporter": {"image"},
    "exporter.image": set(IMAGE_EXPORTER_DEFAULT_KEYS),
    "log": {"format", "level"},
    "dns": {"nameservers", "options", "searchDomains"},
    "grpc": {"address", "debugAddress", "uid", "gid", "tls"},
    "grpc.tls": {"cert", "key", "ca"},
    "otel": {"socketPath"},
    "cdi": {"disabled", "specDirs"},
    "history": {"maxAge", "maxEntries"},
    "worker": {"oci", "containerd"},
    "worker.oci": {"enabled", "platforms", "snapshotter", "rootless", "noProcessSandbox", "gc", "gckeepstorage",
                   "reservedSpace", "maxUsedSpace", "minFreeSpace", "binary", "apparmor-profile",
                   "selinux", "max-parallelism", "cniPoolSize", "cniBinaryPath", "cniConfigPath", "labels",
                   "gcpolicy", "networkMode", "userRemapUnsupported", "hostname"},
    "worker.containerd": {"address", "enabled", "platforms", "namespace", "gc", "gckeepstorage",
                          "reservedSpace", "maxUsedSpace", "minFreeSpace", "defaultCgroupParent", "runtime",
                          "labels", "gcpolicy", "snapshotter", "max-parallelism"},
    "system": {"platformsCacheMaxAge"},
    "frontend": {"max-expansion-size", "time-budget", "memory-budget"},
}


def check_keys(data: Mapping[str, Any], *, where: str, table: str = "") -> None:
    """An unknown or misspelled key is an error naming the key and the file."""
    import difflib

    known = KNOWN_KEYS.get(table)
    if known is None:
        return
    for key, value in data.items():
        name = f"{table}.{key}" if table else key
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            raise ConfigError(f"{where}: unknown key {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        if isinstance(value, dict):
            check_keys(value, where=where, table=name)


def parse_config(data: Mapping[str, Any], *, source: Path | None = None, root: Path | None = None) -> Config:
    where = str(source) if source else "configuration"
    check_keys(data, where=where)

    def expect(value: Any, kind: type | tuple[type, ...], key: str) -> Any:
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ConfigError(f"{where}: {key} must be a {names}, not {type(value).__name__}")
        return value

    entitlements = tuple(expect(data.get("insecure-entitlements", []), list, "insecure-entitlements"))
    for ent in entitlements:
        if ent not in KNOWN_ENTITLEMENTS:
            raise ConfigError(f"{where}: insecure-entitlements: unknown entitlement {ent!r}",
                              hint="known: " + ", ".join(KNOWN_ENTITLEMENTS))
    registries: dict[str, RegistryHostConfig] = {}
    for host, reg in expect(data.get("registry", {}), dict, "registry").items():
        expect(reg, dict, f"registry.{host!r}")
        keypairs = tuple((kp.get("key", ""), kp.get("cert", "")) for kp in reg.get("keypair", []))
        registries[host] = RegistryHostConfig(
            mirrors=tuple(expect(reg.get("mirrors", []), list, f'registry."{host}".mirrors')),
            http=bool(expect(reg.get("http", False), bool, f'registry."{host}".http')),
            insecure=bool(expect(reg.get("insecure", False), bool, f'registry."{host}".insecure')),
            ca=tuple(expect(reg.get("ca", []), list, f'registry."{host}".ca')),
            keypairs=keypairs,
        )
    oci = expect(data.get("worker", {}), dict, "worker").get("oci", {})
    expect(oci, dict, "worker.oci")
    snapshotter = expect(oci.get("snapshotter", "auto"), str, "worker.oci.snapshotter")
    if snapshotter not in SNAPSHOTTERS:
        raise ConfigError(f"{where}: worker.oci.snapshotter: unknown snapshotter {snapshotter!r}",
                          hint="use one of " + ", ".join(SNAPSHOTTERS))
    parallelism = oci.get("max-parallelism", os.cpu_count() or 2)
    expect(parallelism, int, "worker.oci.max-parallelism")
    if parallelism < 1:
        raise ConfigError(f"{where}: worker.oci.max-parallelism must be at least 1")
    worker = OCIWorkerConfig(
        enabled=bool(oci.get("enabled", True)),
        binary=oci.get("binary") or None,
        snapshotter=snapshotter,
        max_parallelism=parallelism,
        rootless=oci.get("rootless"),
        no_process_sandbox=bool(oci.get("noProcessSandbox", False)),
        platforms=tuple(oci.get("platforms", [])),
        gc=bool(oci.get("gc", True)),
        gc_policies=parse_policies(oci.get("gcpolicy", []), where),
    )
    grpc = expect(data.get("grpc", {}), dict, "grpc")
    addresses = grpc.get("address", [])
    if isinstance(addresses, str):
        addresses = [addresses]
    frontend = expect(data.get("frontend", {}), dict, "frontend")
    max_expansion = expect(frontend.get("max-expansion-size", FrontendConfig.max_expansion_size), int,
                           "frontend.max-expansion-size")
    if max_expansion < 1:
        raise ConfigError(f"{where}: frontend.max-expansion-size must be at least 1")
    time_budget = expect(frontend.get("time-budget", FrontendConfig.time_budget), (int, float), "frontend.time-budget")
    if isinstance(time_budget, bool) or time_budget <= 0:
        raise ConfigError(f"{where}: frontend.time-budget must be a positive number of seconds")
    memory_budget = expect(frontend.get("memory-budget", FrontendConfig.memory_budget), int, "frontend.memory-budget")
    if isinstance(memory_budget, bool) or memory_budget < 1:
        raise ConfigError(f"{where}: frontend.memory-budget must be a positive number of bytes")
    config_root = data.get("root")
    if config_root is not None:
        expect(config_root, str, "root")
    return Config(
        root=root or (Path(config_root) if config_root else default_root()),
        insecure_entitlements=entitlements,
        registries=registries,
        worker=worker,
        grpc=GRPCConfig(tuple(addresses), grpc.get("uid"), grpc.get("gid"), _tls(grpc.get("tls"), where)),
        frontend=FrontendConfig(max_expansion_size=max_expansion, time_budget=float(time_budget),
                                memory_budget=memory_budget),
        debug=bool(data.get("debug", False)),
        source=source,
        image_exporter_defaults=_image_defaults(data.get("exporter", {}).get("image", {}), where),
        rootless_network=_rootless_network(data.get("rootless", {}).get("network", "slirp4netns"), where),
    )


def _tls(table: Any, where: str) -> TLSConfig | None:
    if not table:
        return None
    if not table.get("cert") or not table.get("key"):
        raise ConfigError(f"{where}: grpc.tls needs both cert and key")
    return TLSConfig(Path(table["cert"]), Path(table["key"]), Path(table["ca"]) if table.get("ca") else None)


def _image_defaults(table: Any, where: str) -> dict[str, str]:
    from pybuildkit.worker.exporters.options import parse_image_options

    out: dict[str, str] = {}
    for key, value in (table or {}).items():
        out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    if out:
        try:
            parse_image_options("image", out)  # the same checks as on the command line
        except BuildError as exc:
            raise ConfigError(f"{where}: exporter.image: {exc.message}", hint=exc.hint) from exc
    return out


def _rootless_network(value: Any, where: str) -> str:
    if value not in ("slirp4netns", "host"):
        raise ConfigError(f"{where}: rootless.network: unknown network {value!r}", hint="use slirp4netns or host")
    return str(value)
