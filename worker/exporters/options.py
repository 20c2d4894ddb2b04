"""Image exporter options (BUILDKIT-FACTS §6), parsed once into a typed value with clear errors."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.platforms import Platform, parse_platform
from pybuildkit.worker.compression import Compression

_COMMON = {"name", "push", "push-by-digest", "registry.insecure", "unpack", "dangling-name-prefix",
           "danging-name-empty-only", "name-canonical", "store", "oci-mediatypes", "oci-artifact",
           "compression", "compression-level", "force-compression", "rewrite-timestamp",
           "source-date-epoch", "buildinfo", "buildinfo-attrs", "attestation-inline",
           "prefer-nondist-layers"}
_ALLOWED = {"image": _COMMON, "oci": _COMMON | {"dest", "tar"}, "docker": _COMMON | {"dest", "context", "tar"}}
_ANNOTATION = re.compile(r"^annotation(?:-(manifest|manifest-descriptor|index|index-descriptor))?"
                         r"(?:\[([^\]]+)\])?\.(.+)$")
_LEVELS = {Compression.GZIP: (0, 9), Compression.ESTARGZ: (0, 9), Compression.ZSTD: (0, 22),
           Compression.UNCOMPRESSED: (0, 0)}


class ExporterOptionError(BuildError):
    pass


@dataclass(frozen=True)
class Annotation:
    target: str  # manifest | manifest-descriptor | index | index-descriptor
    platform: Platform | None
    key: str
    value: str


@dataclass(frozen=True)
class ImageOptions:
    kind: str
    names: tuple[str, ...] = ()
    push: bool = False
    push_by_digest: bool = False
    insecure: bool = False
    name_canonical: bool = False
    dangling_name_prefix: str = ""
    oci_mediatypes: bool = False
    compression: Compression = Compression.GZIP
    compression_level: int | None = None
    force_compression: bool = False
    rewrite_timestamp: bool = False
    source_date_epoch: int | None = None
    dest: str | None = None
    #: oci/docker: False writes an OCI layout directory instead of a tarball
    tar: bool = True
    annotations: tuple[Annotation, ...] = field(default=())


def _bool(attrs: Mapping[str, str], key: str, kind: str, default: bool = False) -> bool:
    if key not in attrs:
        return default
    value = attrs[key].strip().lower()
    if value in ("", "true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ExporterOptionError(f"--output type={kind}: invalid boolean value {attrs[key]!r} for {key}")


def parse_image_options(kind: str, attrs: Mapping[str, str], *, build_args_epoch: str | None = None) -> ImageOptions:
    annotations: list[Annotation] = []
    for key, value in attrs.items():
        match = _ANNOTATION.match(key)
        if match:
            target = match.group(1) or "manifest"
            platform = parse_platform(match.group(2)) if match.group(2) else None
            annotations.append(Annotation(target, platform, match.group(3), value))
            continue
        if key not in _ALLOWED[kind]:
            raise ExporterOptionError(f"--output type={kind}: unknown option {key!r}",
                                      hint="valid options: " + ", ".join(sorted(_ALLOWED[kind]))
                                      + ", annotation.KEY")
    names = tuple(n.strip() for n in attrs.get("name", "").split(",") if n.strip())
    try:
        compression = Compression(attrs.get("compression", "gzip") or "gzip")
    except ValueError:
        raise ExporterOptionError(
            f"--output type={kind}: unsupported compression {attrs['compression']!r}",
            hint="use uncompressed, gzip, zstd or estargz") from None
    level: int | None = None
    if attrs.get("compression-level"):
        try:
            level = int(attrs["compression-level"])
        except ValueError:
            raise ExporterOptionError(f"--output type={kind}: compression-level must be a number") from None
        low, high = _LEVELS[compression]
        if not low <= level <= high:
            raise ExporterOptionError(
                f"--output type={kind}: compression-level {level} is out of range for {compression} ({low}-{high})")
    # The exporter's own option wins over the build's `build-arg:SOURCE_DATE_EPOCH`, as in BuildKit;
    # the daemon's environment is never read (a client's variable arrives as that build-arg).
    epoch_text = attrs.get("source-date-epoch") or build_args_epoch
    epoch = None
    if epoch_text:
        try:
            epoch = int(epoch_text)
        except ValueError:
            raise ExporterOptionError(f"invalid SOURCE_DATE_EPOCH {epoch_text!r}: expected seconds since 1970") from None
    push = _bool(attrs, "push", kind)
    if push and kind != "image":
        raise ExporterOptionError(f"--output type={kind}: push is only supported by type=image")
    if push and not names:
        raise ExporterOptionError("--output type=image,push=true requires name=<registry/repo:tag>")
    oci = _bool(attrs, "oci-mediatypes", kind, default=(kind == "oci"))
    return ImageOptions(
        kind=kind, names=names, push=push, push_by_digest=_bool(attrs, "push-by-digest", kind),
        insecure=_bool(attrs, "registry.insecure", kind), name_canonical=_bool(attrs, "name-canonical", kind),
        dangling_name_prefix=attrs.get("dangling-name-prefix", ""), oci_mediatypes=oci,
        compression=compression, compression_level=level,
        force_compression=_bool(attrs, "force-compression", kind),
        rewrite_timestamp=_bool(attrs, "rewrite-timestamp", kind), source_date_epoch=epoch,
        dest=attrs.get("dest"), tar=_bool(attrs, "tar", kind, default=True), annotations=tuple(annotations))
