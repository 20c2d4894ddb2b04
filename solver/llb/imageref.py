"""Normalising image references the way the Go LLB client does before it builds a source
identifier (`busybox` -> `docker.io/library/busybox:latest`). The worker's registry client
parses references fully; this only needs the canonical text."""
from __future__ import annotations

import re

from pybuildkit.solver.errors import BuildError

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")


class InvalidReferenceError(BuildError):
    pass


def split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        return first, rest
    return "docker.io", name


def normalize_image_ref(ref: str) -> str:
    """Canonical `domain/path[:tag][@digest]`, `:latest` added when neither is given."""
    text = ref.strip()
    if not text:
        raise InvalidReferenceError("invalid reference format: empty image name")
    name, _, digest = text.partition("@")
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    domain, path = split_domain(name)
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    if any(not _COMPONENT.match(c) for c in path.split("/")):
        if path != path.lower():
            raise InvalidReferenceError(
                f"invalid reference format: repository name ({path}) must be lowercase")
        raise InvalidReferenceError(f"invalid reference format: {ref}")
    if tag and not _TAG.match(tag):
        raise InvalidReferenceError(f"invalid reference format: {ref}")
    if digest and not _DIGEST.match(digest):
        raise InvalidReferenceError(f"invalid reference format: {ref}")
    out = f"{domain}/{path}"
    if tag:
        out += ":" + tag
    elif not digest:
        out += ":latest"
    if digest:
        out += "@" + digest
    return out
