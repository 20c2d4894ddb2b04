"""`RUN --mount=...` options, parsed with the Dockerfile reference's keys and upstream's errors."""
from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass

from pybuildkit.frontend.dockerfile.instructions.errors import DockerfileError, with_suggestion

TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
KEYS = ("type", "target", "destination", "dst", "source", "src", "from", "readonly", "ro", "rw", "readwrite",
        "id", "sharing", "mode", "uid", "gid", "size", "required", "env")


@dataclass
class MountSpec:
    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    readonly: bool | None = None
    id: str = ""
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int = 0
    required: bool = False
    env: str | None = None


def _bool(key: str, value: str) -> bool:
    if value == "" or value.lower() == "true":
        return True
    if value.lower() == "false":
        return False
    raise DockerfileError(f"invalid value for {key}: {value}")


def _size(value: str) -> int:
    units = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}
    text = value.strip().lower()
    number = text.rstrip("kmgbi")
    unit = text[len(number):].replace("i", "")
    if not number or unit not in units:
        raise DockerfileError(f"invalid size: {value}")
    try:
        return int(float(number) * units[unit])
    except (ValueError, OverflowError):  # "1.2.3", "nan", "1e999"
        raise DockerfileError(f"invalid size: {value}") from None


def parse_mount(value: str, expand: Callable[[str], str]) -> MountSpec:
    fields = next(csv.reader([value]))
    spec = MountSpec()
    seen_type = False
    for field in fields:
        key, has_value, raw = field.partition("=")
        key = key.strip().lower()
        if key == "type":
            spec.type = expand(raw)
            seen_type = True
            if spec.type not in TYPES:
                raise DockerfileError(with_suggestion(f'unsupported mount type "{spec.type}"', spec.type, TYPES))
    for field in fields:
        key, has_value, raw = field.partition("=")
        key = key.strip().lower()
        if key == "type":
            continue
        if key not in KEYS:
            raise DockerfileError(with_suggestion(f"unexpected key '{key}' in '{field}'", key, KEYS))
        val = expand(raw) if key not in ("from",) else raw
        if key in ("target", "destination", "dst"):
            spec.target = val
        elif key in ("source", "src"):
            spec.source = val
        elif key == "from":
            spec.from_ = val
        elif key in ("readonly", "ro"):
            spec.readonly = _bool(key, val) if has_value else True
        elif key in ("rw", "readwrite"):
            spec.readonly = not (_bool(key, val) if has_value else True)
        elif key == "id":
            spec.id = val
        elif key == "sharing":
            if val not in ("shared", "private", "locked"):
                raise DockerfileError(f"unsupported sharing value {val!r}")
            spec.sharing = val
        elif key == "mode":
            try:
                spec.mode = int(val, 8)
            except ValueError:
                raise DockerfileError(f"invalid value {val} for mode") from None
            if not 0 <= spec.mode <= 0o7777:
                raise DockerfileError(f"invalid value {val} for mode: it must be between 0 and 07777")
        elif key in ("uid", "gid"):
            try:
                number = int(val)
            except ValueError:
                raise DockerfileError(f"invalid value {val[:40]} for {key}") from None
            if not 0 <= number < 1 << 32:
                raise DockerfileError(f"invalid value {val[:40]} for {key}: it must be between 0 and 4294967295")
            setattr(spec, key, number)
        elif key == "size":
            spec.size = _size(val)
        elif key == "required":
            spec.required = _bool(key, val) if has_value else True
        elif key == "env":
            spec.env = val
    if not seen_type:
        spec.type = "bind"
    if spec.type in ("secret",):
        if not spec.id and spec.target:
            spec.id = spec.target.rstrip("/").rsplit("/", 1)[-1]
        if not spec.id and spec.env is None:
            raise DockerfileError("secret mount requires an id or target")
        if not spec.target and spec.env is None:
            spec.target = f"/run/secrets/{spec.id}"
    elif spec.type == "ssh":
        spec.id = spec.id or "default"
    elif not spec.target:
        raise DockerfileError("mount destination (target) is required")
    return spec
