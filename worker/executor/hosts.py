"""/etc/hosts and /etc/resolv.conf for a step, made the way BuildKit makes them.

Both files are bind-mounted read-only over the rootfs, so a step sees working name resolution
without the image's own files being changed (their stubs are removed after the step).
"""
from __future__ import annotations

import ipaddress
from pathlib import Path

from pybuildkit.worker.executor.types import NetMode

DEFAULT_HOSTNAME = "buildkitsandbox"
HOST_RESOLV_CONF = Path("/etc/resolv.conf")
SYSTEMD_RESOLVED_UPSTREAM = Path("/run/systemd/resolve/resolv.conf")
# Docker's fallbacks when every nameserver of the host is a loopback address.
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844")


def hosts_content(hostname: str, extra_hosts: tuple[tuple[str, str], ...] = ()) -> str:
    """localhost lines naming the step's hostname, then one `IP<TAB>host` line per extra host."""
    lines = [f"127.0.0.1\tlocalhost {hostname or DEFAULT_HOSTNAME}",
             "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{ip}\t{host}" for host, ip in extra_hosts]
    return "\n".join(lines) + "\n"


def _nameservers(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(fields[1])
    return found


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def host_resolv_conf(network: NetMode, main: Path = HOST_RESOLV_CONF,
                     resolved: Path = SYSTEMD_RESOLVED_UPSTREAM) -> str:
    """The resolv.conf a step's resolver should start from.

    With systemd-resolved the main file only names its 127.0.0.53 stub, which a private network
    namespace cannot reach; its upstream file lists the real servers, as Docker uses."""
    try:
        text = main.read_text()
    except OSError:
        return ""
    servers = _nameservers(text)
    if network != NetMode.HOST and servers and all(s.startswith("127.0.0.53") for s in servers):
        try:
            return resolved.read_text()
        except OSError:
            pass
    return text


def resolv_content(host_text: str, network: NetMode) -> str:
    """The host's resolv.conf without loopback nameservers (except in host networking when they
    can work), falling back to public resolvers when none remain."""
    if network == NetMode.HOST and _nameservers(host_text):
        return host_text if host_text.endswith("\n") or not host_text else host_text + "\n"
    kept = [line for line in host_text.splitlines()
            if not (line.split()[:1] == ["nameserver"] and len(line.split()) > 1
                    and _is_loopback(line.split()[1]))]
    if not _nameservers("\n".join(kept)):
        kept += [f"nameserver {server}" for server in FALLBACK_NAMESERVERS]
    return "\n".join(kept) + "\n"


def write_host_files(directory: Path, req_hostname: str, extra_hosts: tuple[tuple[str, str], ...],
                     network: NetMode) -> tuple[Path, Path]:
    """Write `hosts` and `resolv.conf` for one step into its bundle directory."""
    hosts = directory / "hosts"
    resolv = directory / "resolv.conf"
    hosts.write_text(hosts_content(req_hostname, extra_hosts))
    resolv.write_text(resolv_content(host_resolv_conf(network), network))
    for path in (hosts, resolv):
        path.chmod(0o644)
    return hosts, resolv
