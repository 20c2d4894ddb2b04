"""Image references, normalised like Docker's (`busybox` -> docker.io/library/busybox:latest)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from pybuildkit.solver.llb.imageref import InvalidReferenceError, normalize_image_ref

ReferenceError = InvalidReferenceError


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def familiar(self) -> str:
        name = self.path.removeprefix("library/") if self.domain == "docker.io" else self.repository
        if self.domain == "docker.io" and not self.path.startswith("library/"):
            name = self.path
        return name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def with_digest(self, digest: str | None) -> "Reference":
        return replace(self, digest=digest)

    def with_tag(self, tag: str | None) -> "Reference":
        return replace(self, tag=tag)

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"


def parse_reference(text: str) -> Reference:
    canonical = normalize_image_ref(text)
    name, _, digest = canonical.partition("@")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    domain, _, path = name.partition("/")
    if digest and tag == "latest" and ":latest@" not in text and not text.split("@")[0].endswith(":latest"):
        tag = None
    return Reference(domain, path, tag, digest or None)
