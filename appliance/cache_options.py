"""`--export-cache` / `--import-cache` values as buildctl writes them: `type=T,key=value,...`
(CSV, so a value may be quoted to hold a comma). A bare value without `=` is buildctl's
shorthand for a registry ref."""
from __future__ import annotations

import csv
from collections.abc import Sequence

from pybuildkit.solver.errors import BuildError


def parse_cache_options(values: Sequence[str], flag: str) -> list[tuple[str, dict[str, str]]]:
    if not values:
        return []  # without the import below: a build without cache options starts 10 ms sooner
    from pybuildkit.worker.remotecache import parse_export, parse_import

    out: list[tuple[str, dict[str, str]]] = []
    for value in values:
        fields = next(csv.reader([value]), [])
        if len(fields) == 1 and "=" not in fields[0]:
            fields = ["type=registry", f"ref={fields[0]}"]
        attrs: dict[str, str] = {}
        kind = ""
        for item in fields:
            key, sep, val = item.partition("=")
            key = key.strip()
            if not sep:
                raise BuildError(f"{flag} {value}: expected key=value, got {item!r}")
            if key == "type":
                kind = val
            else:
                attrs[key] = val
        if not kind:
            raise BuildError(f"{flag} {value}: missing type=...", hint="e.g. type=registry,ref=REF or type=local,dest=DIR")
        (parse_export if flag == "--export-cache" else parse_import)(kind, attrs, flag)
        out.append((kind, attrs))
    return out
