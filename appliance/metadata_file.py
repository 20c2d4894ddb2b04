"""`--metadata-file`: the exporter response as buildctl writes it.

buildctl decodes every value that is base64 of a JSON object and writes the object itself (so
`containerimage.descriptor` is a JSON object, not a string); other values stay strings. Keys are
sorted and indented by two spaces, as Go's json.MarshalIndent does with a map. Like buildx we
add `buildx.build.ref` (builder/node/ref), which tools that read metadata files look for.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from pathlib import Path

BUILDER_NAME = "pybuildkit"
NODE_NAME = "pybuildkit0"


def metadata(response: Mapping[str, str], *, build_ref: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in response.items():
        out[key] = _decoded(value)
    if build_ref and "buildx.build.ref" not in out:
        out["buildx.build.ref"] = f"{BUILDER_NAME}/{NODE_NAME}/{build_ref}"
    return out


def _decoded(value: str) -> object:
    try:
        raw = base64.b64decode(value, validate=True)
        parsed = json.loads(raw)
    except (binascii.Error, ValueError):
        return value
    return parsed if isinstance(parsed, dict) and parsed else value


def render(data: Mapping[str, object]) -> str:
    """Go's MarshalIndent: sorted keys, `<`, `>` and `&` escaped, no trailing newline."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def write_metadata_file(path: Path, response: Mapping[str, str], *, build_ref: str = "") -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(metadata(response, build_ref=build_ref)))
    os.replace(tmp, path)
