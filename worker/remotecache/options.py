"""`--export-cache` / `--import-cache` types and attributes, checked before anything runs.

Unknown types and options are errors naming them, as a user typing `type=bogus` deserves.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.compression import Compression


class CacheOptionError(BuildError):
    pass


class Mode(StrEnum):
    MIN = "min"
    MAX = "max"


_COMMON_EXPORT = {"mode", "compression", "compression-level", "force-compression", "oci-mediatypes",
                  "image-manifest", "ignore-error", "cache-mounts"}
EXPORT_KEYS: dict[str, set[str]] = {
    "inline": set(),
    "registry": {"ref"} | _COMMON_EXPORT,
    "local": {"dest", "tag"} | _COMMON_EXPORT,
}
IMPORT_KEYS: dict[str, set[str]] = {
    "registry": {"ref", "cache-mounts"},
    "local": {"src", "tag", "digest", "cache-mounts"},
}
REQUIRED = {("export", "registry"): "ref", ("export", "local"): "dest",
            ("import", "registry"): "ref", ("import", "local"): "src"}


@dataclass(frozen=True)
class CacheExport:
    type: str
    mode: Mode = Mode.MIN
    ref: str = ""
    dest: str = ""
    tag: str = "latest"
    compression: Compression = Compression.GZIP
    compression_level: int | None = None
    force_compression: bool = False
    oci_mediatypes: bool = True
    image_manifest: bool = True
    ignore_error: bool = False
    cache_mounts: bool = False


@dataclass(frozen=True)
class CacheImport:
    type: str
    ref: str = ""
    src: str = ""
    tag: str = "latest"
    digest: str = ""
    cache_mounts: bool = False


def _bool(flag: str, attrs: Mapping[str, str], key: str, default: bool) -> bool:
    if key not in attrs:
        return default
    value = attrs[key].lower()
    if value in ("true", "1", ""):
        return True
    if value in ("false", "0"):
        return False
    raise CacheOptionError(f"{flag}: invalid value {attrs[key]!r} for {key}", hint="use true or false")


def _check_keys(flag: str, direction: str, kind: str, attrs: Mapping[str, str], table: dict[str, set[str]]) -> None:
    if kind not in table:
        raise CacheOptionError(f"{flag}: unknown cache {direction}er type {kind!r}",
                               hint="use one of " + ", ".join(sorted(table)))
    for key in attrs:
        if key not in table[kind]:
            allowed = ", ".join(sorted(table[kind])) or "none"
            raise CacheOptionError(f"{flag} type={kind}: unknown option {key!r}", hint=f"valid options: {allowed}")
    required = REQUIRED.get((direction, kind))
    if required and not attrs.get(required):
        raise CacheOptionError(f"{flag} type={kind} requires {required}=...")


def parse_export(kind: str, attrs: Mapping[str, str], flag: str = "--export-cache") -> CacheExport:
    _check_keys(flag, "export", kind, attrs, EXPORT_KEYS)
    try:
        mode = Mode(attrs.get("mode", "min") or "min")
    except ValueError:
        raise CacheOptionError(f"{flag}: invalid mode {attrs['mode']!r}", hint="use mode=min or mode=max") from None
    try:
        compression = Compression(attrs.get("compression", "gzip") or "gzip")
    except ValueError:
        raise CacheOptionError(f"{flag}: unsupported compression {attrs['compression']!r}",
                               hint="use uncompressed, gzip, zstd or estargz") from None
    level = None
    if attrs.get("compression-level"):
        try:
            level = int(attrs["compression-level"])
        except ValueError:
            raise CacheOptionError(f"{flag}: invalid compression-level {attrs['compression-level']!r}") from None
    oci = _bool(flag, attrs, "oci-mediatypes", True)
    image_manifest = _bool(flag, attrs, "image-manifest", oci)
    if image_manifest and not oci:
        raise CacheOptionError(f"{flag}: image-manifest=true requires oci-mediatypes=true",
                               hint="drop oci-mediatypes=false or set image-manifest=false")
    return CacheExport(kind, mode, attrs.get("ref", ""), attrs.get("dest", ""), attrs.get("tag", "latest") or "latest",
                       compression, level, _bool(flag, attrs, "force-compression", False), oci, image_manifest,
                       _bool(flag, attrs, "ignore-error", False), _bool(flag, attrs, "cache-mounts", False))


def parse_import(kind: str, attrs: Mapping[str, str], flag: str = "--import-cache") -> CacheImport:
    _check_keys(flag, "import", kind, attrs, IMPORT_KEYS)
    return CacheImport(kind, attrs.get("ref", ""), attrs.get("src", ""), attrs.get("tag", "latest") or "latest",
                       attrs.get("digest", ""), _bool(flag, attrs, "cache-mounts", False))
