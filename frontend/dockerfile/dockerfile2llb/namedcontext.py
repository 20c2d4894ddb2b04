"""Named contexts (`--opt context:NAME=VALUE`): what a build may put in place of an image, a stage
or a `--from` source, as BuildKit's dockerfile frontend allows.

NAME is matched in BuildKit's form (the reference's familiar name without `:latest`, so
`docker.io/library/busybox:latest` and `busybox` are both `busybox`), first with the platform
(`NAME::linux/arm64`), then alone. VALUE names a source by its scheme: `docker-image://REF`,
`local:NAME`, a git URL, an `http(s)://` URL (downloaded as a file named `context`), or
`oci-layout://STORE[:tag][@digest]` (`--oci-layout STORE=DIR`) and `input:NAME`. Any other scheme is an error naming it, never
a silent fallback to an image of that name.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pybuildkit.frontend.dockerfile.instructions import DockerfileError
from pybuildkit.solver.llb import builder as llb
from pybuildkit.solver.llb.imageref import InvalidReferenceError, normalize_image_ref
from pybuildkit.solver.platforms import Platform

if TYPE_CHECKING:
    from pybuildkit.frontend.dockerfile.dockerfile2llb.convert import Converter

PREFIX = "context:"
EMPTY_IMAGE = "scratch"
_GIT_URL = re.compile(r"^(git@|git://|ssh://|github\.com/|https?://[^#]+\.git(#.*)?$)")


@dataclass(frozen=True)
class NamedContext:
    name: str  # the familiar name the Dockerfile's reference maps to
    key: str  # what the user's option named: NAME or NAME::platform
    value: str


@dataclass(frozen=True)
class LoadedContext:
    state: llb.State
    image: dict | None  # the image config when the source is an image, else None


def familiar_name(ref: str) -> str:
    """`docker.io/library/busybox:latest` -> `busybox`; a name that is no image reference is kept."""
    try:
        canonical = normalize_image_ref(ref)
    except InvalidReferenceError:
        return ref
    name = canonical.removeprefix("docker.io/library/").removeprefix("docker.io/")
    return name.removesuffix(":latest")


def find(contexts: Mapping[str, str], ref: str, platform: Platform) -> NamedContext | None:
    """The named context standing for `ref` on `platform`, if the build was given one."""
    if not contexts:
        return None
    name = familiar_name(ref)
    for key in (f"{name}::{platform.normalized()}", name):
        if PREFIX + key in contexts:
            return NamedContext(name, key, contexts[PREFIX + key])
    return None


def is_git_url(value: str) -> bool:
    return bool(_GIT_URL.match(value))


def git_state(value: str, custom_name: str) -> llb.State:
    """A git URL with BuildKit's `#ref:subdir` fragment."""
    remote, _, fragment = value.partition("#")
    ref, _, subdir = fragment.partition(":")
    return llb.git(remote, ref, subdir=subdir, constraints=llb.Constraints(custom_name=custom_name))


async def load(conv: Converter, nc: NamedContext, platform: Platform,
               local_dockerignores: Mapping[str, list[str]]) -> LoadedContext:
    scheme, sep, rest = nc.value.partition(":")
    if not sep:
        raise DockerfileError(f"invalid context specifier {nc.value} for {nc.key}")
    if scheme.startswith("git@"):
        scheme = "git"
    label = f"[context {nc.key}]"
    if scheme == "docker-image":
        return await _image(conv, nc, rest.removeprefix("//"), platform, label)
    if scheme == "git":
        if not is_git_url(nc.value):
            raise DockerfileError(f"invalid git context {nc.value}")
        return LoadedContext(git_state(nc.value, f"{label} {nc.value}"), None)
    if scheme in ("http", "https"):
        if is_git_url(nc.value):
            return LoadedContext(git_state(nc.value, f"{label} {nc.value}"), None)
        state = llb.http(nc.value, filename="context", constraints=llb.Constraints(custom_name=f"{label} {nc.value}"))
        return LoadedContext(state, None)
    if scheme == "oci-layout":
        return await _oci_layout(conv, nc, rest.removeprefix("//"), platform, label)
    if scheme == "local":
        state = llb.local(rest, session_id=conv.options.session_id, shared_key_hint=f"context:{nc.key}-",
                          exclude_patterns=local_dockerignores.get(rest, ()),
                          constraints=llb.Constraints(custom_name=f"{label} load from client"))
        return LoadedContext(state, None)
    if scheme == "input":
        # Inputs come from a gateway client's own solves; a Dockerfile build here has none.
        raise DockerfileError(f"invalid input {rest} for {nc.key}")
    raise DockerfileError(f"unsupported context source {scheme} for {nc.key}",
                          hint="use docker-image://, local:, a git URL, https://, oci-layout:// or input:")


async def _image(conv: Converter, nc: NamedContext, ref: str, platform: Platform, label: str) -> LoadedContext:
    if ref == EMPTY_IMAGE:
        return LoadedContext(llb.scratch().platform(platform), None)
    try:
        canonical = normalize_image_ref(ref)
    except InvalidReferenceError as exc:
        raise DockerfileError(exc.message) from None
    config: dict = {}
    pinned = canonical
    if conv.resolver is not None:
        digest_ref, config = await conv.resolve(canonical, platform, f"[context {nc.key}]")
        if "@" in digest_ref:
            pinned = canonical.split("@")[0] + "@" + digest_ref.split("@", 1)[1]
    state = llb.image(pinned, platform=platform, constraints=llb.Constraints(custom_name=f"{label} {ref}"))
    image = copy.deepcopy(config)
    image.pop("created", None)
    return LoadedContext(state, image)


async def _oci_layout(conv: Converter, nc: NamedContext, ref: str, platform: Platform, label: str) -> LoadedContext:
    store, at, digest = ref.partition("@")
    if at and not digest.startswith("sha256:"):
        raise DockerfileError(f"could not parse oci-layout reference {ref!r}: invalid digest",
                              hint="name the image as oci-layout://STORE[:tag][@sha256:...]")
    store_id, _, tag = store.partition(":")
    if not store_id:
        raise DockerfileError(f"oci-layout reference {ref!r} has no name")
    try:
        display = normalize_image_ref(nc.name).rsplit(":", 1)[0] if "@" not in nc.name else nc.name.split("@")[0]
    except InvalidReferenceError as exc:
        raise DockerfileError(f"could not parse oci-layout reference {nc.name!r}: {exc.message}") from None
    config: dict = {}
    if conv.resolver is not None:  # also turns a tag into the digest the layout's index gives it
        wanted = f"oci-layout://{store_id}" + (f"@{digest}" if digest else f":{tag or 'latest'}")
        resolved, config = await conv.resolve(wanted, platform, f"[context {nc.key}]")
        digest = resolved.partition("@")[2] or digest
    if not digest:
        raise DockerfileError(f"oci-layout reference {ref!r} has no digest",
                              hint="name the image as oci-layout://STORE@sha256:...")
    state = llb.oci_layout(f"{display}@{digest}", store_id=store_id, session_id=conv.options.session_id,
                           platform=platform,
                           constraints=llb.Constraints(custom_name=f"{label} OCI load from client"))
    image = copy.deepcopy(config)
    image.pop("created", None)
    return LoadedContext(state, image)
