"""OCI platforms: parsing, normalisation and formatting as containerd's platforms package does."""
from __future__ import annotations

import platform as _host
from dataclasses import dataclass

from pybuildkit.solver.errors import BuildError

_ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
    "i386": "386", "i686": "386", "ppc64el": "ppc64le",
}


@dataclass(frozen=True, order=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""
    os_version: str = ""

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    def normalized(self) -> "Platform":
        arch = _ARCH_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant
        if arch == "arm64" and variant in ("v8", "8"):
            variant = ""
        elif arch == "arm":
            variant = {"": "v7", "7": "v7", "6": "v6", "5": "v5", "8": "v8"}.get(variant, variant)
            if self.architecture == "armel" and not self.variant:
                variant = "v6"
        elif arch == "amd64" and variant == "v1":
            variant = ""
        return Platform(self.os.lower(), arch, variant, self.os_version)

    def to_pb(self):  # -> pb.Platform, imported lazily to keep this module light
        from pybuildkit.solver.pb import ops_pb2 as pb

        return pb.Platform(OS=self.os, Architecture=self.architecture, Variant=self.variant,
                           OSVersion=self.os_version)

    @classmethod
    def from_pb(cls, p) -> "Platform":
        return cls(p.OS or "linux", p.Architecture, p.Variant, p.OSVersion)

    def to_oci(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        return out

    @property
    def uname_machine(self) -> str:
        """What `uname -m` prints on this platform (used to pick QEMU emulators)."""
        return {"amd64": "x86_64", "arm64": "aarch64", "386": "i386", "arm": "arm"}.get(
            self.architecture, self.architecture)


class PlatformError(BuildError):
    pass


def parse_platform(spec: str) -> Platform:
    """Parse `os/arch[/variant]`, `arch`, or `local`; normalise as containerd does."""
    text = spec.strip()
    if not text:
        raise PlatformError("invalid platform: empty string")
    if text == "local":
        return host_platform()
    parts = text.split("/")
    if len(parts) > 3 or any(not p for p in parts):
        raise PlatformError(f'"{spec}": unknown operating system or architecture: invalid argument')
    if len(parts) == 1:
        os_name, arch, variant = "linux", parts[0], ""
    else:
        os_name, arch = parts[0], parts[1]
        variant = parts[2] if len(parts) == 3 else ""
    known_os = {"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos",
                "aix", "android", "ios", "js", "wasip1", "plan9", "dragonfly"}
    if os_name.lower() not in known_os:
        raise PlatformError(f'"{spec}": unknown operating system or architecture: invalid argument')
    return Platform(os_name, arch.lower(), variant.lower()).normalized()


def host_platform() -> Platform:
    machine = _host.machine().lower()
    arch = _ARCH_ALIASES.get(machine, machine)
    variant = ""
    if arch == "arm":
        variant = "v7"
    return Platform("linux", arch, variant)


def format_platforms(platforms: list[Platform]) -> str:
    return ",".join(str(p) for p in platforms)
