"""`[[worker.oci.gcpolicy]]` tables of pybuildkitd.toml, as BuildKit reads them: sizes are bytes,
unit strings ("512MB", "10GiB") or a share of the root's disk ("20%"); durations are seconds or
Go durations ("48h", "1h30m"); `keepBytes` is the legacy name of `reservedSpace`."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pybuildkit.solver.errors import ConfigError

POLICY_KEYS = ("all", "filters", "keepDuration", "keepBytes", "reservedSpace", "maxUsedSpace", "minFreeSpace")
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2, "mib": 1024**2,
          "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


class GCPolicyError(ConfigError):
    pass


@dataclass(frozen=True)
class Space:
    """A size in bytes, or a percentage of the disk the root is on."""
    bytes: int = 0
    percent: float = 0.0

    def of(self, disk_bytes: int) -> int:
        return int(disk_bytes * self.percent / 100) if self.percent else self.bytes


@dataclass(frozen=True)
class GCPolicyConfig:
    all: bool = False
    filters: tuple[str, ...] = ()
    keep_duration: float = 0.0
    reserved_space: Space = Space()
    max_used_space: Space = Space()
    min_free_space: Space = Space()


def parse_policies(tables: Any, where: str) -> tuple[GCPolicyConfig, ...]:
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise GCPolicyError(f"{where}: worker.oci.gcpolicy must be an array of tables ([[worker.oci.gcpolicy]])")
    return tuple(_policy(table, f"{where}: worker.oci.gcpolicy[{i}]") for i, table in enumerate(tables))


def _policy(table: Mapping[str, Any], where: str) -> GCPolicyConfig:
    for key in table:
        if key not in POLICY_KEYS:
            raise GCPolicyError(f"{where}: unknown key {key!r}", hint="known: " + ", ".join(POLICY_KEYS))
    filters = table.get("filters", [])
    if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
        raise GCPolicyError(f"{where}.filters must be a list of strings")
    if "keepBytes" in table and "reservedSpace" in table:
        raise GCPolicyError(f"{where}: keepBytes is the old name of reservedSpace; give one of them")
    return GCPolicyConfig(
        all=_flag(table.get("all", False), f"{where}.all"),
        filters=tuple(filters),
        keep_duration=parse_duration(table.get("keepDuration", 0), f"{where}.keepDuration"),
        reserved_space=parse_space(table.get("reservedSpace", table.get("keepBytes", 0)), f"{where}.reservedSpace"),
        max_used_space=parse_space(table.get("maxUsedSpace", 0), f"{where}.maxUsedSpace"),
        min_free_space=parse_space(table.get("minFreeSpace", 0), f"{where}.minFreeSpace"),
    )


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise GCPolicyError(f"{key} must be true or false, not {value!r}")
    return value


def parse_space(value: Any, key: str) -> Space:
    if isinstance(value, bool):
        raise GCPolicyError(f"{key} must be a size, not {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise GCPolicyError(f"{key} must not be negative")
        return Space(bytes=value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            try:
                percent = float(text[:-1])
            except ValueError:
                percent = -1
            if not 0 <= percent <= 100:
                raise GCPolicyError(f"{key}: {value!r} is not a percentage between 0% and 100%")
            return Space(percent=percent)
        match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)", text)
        if match and match.group(2).lower() in _UNITS:
            return Space(bytes=int(float(match.group(1)) * _UNITS[match.group(2).lower()]))
    raise GCPolicyError(f"{key}: {value!r} is not a size", hint='use bytes, "512MB", "10GiB" or "20%"')


def parse_duration(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise GCPolicyError(f"{key} must be a duration, not {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise GCPolicyError(f"{key} must not be negative")
        return float(value)
    if isinstance(value, str):
        parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)", value.strip())
        if parts and "".join(n + u for n, u in parts) == value.strip():
            return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    raise GCPolicyError(f"{key}: {value!r} is not a duration", hint='use seconds or a Go duration such as "48h"')
