"""BuildKit's remote cache format (`application/vnd.buildkit.cacheconfig.v0`), both ways.

A cache config lists layer blobs (each linked to its parent, so a result is a chain) and
records. A record is one vertex output: its digest is `sha256("<cache-map digest>@<output>")`,
its `inputs[i]` lists the records the i-th dependency may be (with the selector digest), and
`layers` names the top layer of its result. Keys are matched as BuildKit does: a record
matches when its digest is equal and every dependency links to a record that matched that
dependency, so the flat key of one builder never needs to equal another's.

JSON field names and the "parent omitted means 0, -1 means none" rule follow Go's
`encoding/json` with `omitempty`, as upstream writes it.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.scheduler import KeyParts, LazyResult, Result, SolvedKey

CACHE_CONFIG_MEDIA_TYPE = "application/vnd.buildkit.cacheconfig.v0"
UNCOMPRESSED_ANNOTATION = "containerd.io/uncompressed"
CREATED_ANNOTATION = "buildkit/createdat"
CACHE_MOUNT_ANNOTATION = "dev.pybuildkit.cache-mount.id"


class CacheFormatError(BuildError):
    pass


def root_key(digest: str, index: int) -> str:
    return "sha256:" + hashlib.sha256(f"{digest}@{index}".encode()).hexdigest()


@dataclass(frozen=True)
class CacheLayer:
    blob: str
    parent: int  # -1: none
    media_type: str = ""
    diff_id: str = ""
    size: int = 0
    created_at: str = ""

    def to_json(self) -> dict:
        out: dict = {"blob": self.blob}
        if self.parent != 0:
            out["parent"] = self.parent
        annotations = {k: v for k, v in (("mediaType", self.media_type), ("diffID", self.diff_id),
                                          ("size", self.size), ("createdAt", self.created_at)) if v}
        if annotations:
            out["annotations"] = annotations
        return out


@dataclass(frozen=True)
class CacheInput:
    link: int
    selector: str = ""


@dataclass
class CacheRecord:
    digest: str
    layer: int | None = None  # index of the result's top layer
    inputs: list[list[CacheInput]] = field(default_factory=list)
    created_at: str = ""

    def to_json(self) -> dict:
        out: dict = {}
        if self.layer is not None:
            result: dict = {"layer": self.layer}
            if self.created_at:
                result["createdAt"] = self.created_at
            out["layers"] = [result]
        out["digest"] = self.digest
        if self.inputs:
            out["inputs"] = [[{**({"selector": i.selector} if i.selector else {}), "link": i.link} for i in alts]
                             for alts in self.inputs]
        return out


@dataclass
class CacheConfig:
    layers: list[CacheLayer] = field(default_factory=list)
    records: list[CacheRecord] = field(default_factory=list)

    def to_json(self) -> dict:
        out: dict = {}
        if self.layers:
            out["layers"] = [layer.to_json() for layer in self.layers]
        if self.records:
            out["records"] = [record.to_json() for record in self.records]
        return out

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    def chain(self, top: int) -> list[CacheLayer]:
        """The layers of a result, bottom first."""
        out: list[CacheLayer] = []
        seen: set[int] = set()
        current = top
        while current >= 0:
            if current in seen or current >= len(self.layers):
                raise CacheFormatError(f"cache config: broken layer chain at index {current}")
            seen.add(current)
            out.append(self.layers[current])
            current = self.layers[current].parent
        return out[::-1]


def parse_config(data: bytes | Mapping) -> CacheConfig:
    doc = json.loads(data) if isinstance(data, (bytes, str)) else dict(data)
    try:
        layers = []
        for index, raw in enumerate(doc.get("layers") or []):
            parent = int(raw.get("parent", 0))
            if parent >= index:  # an omitted parent of the first layer reads as 0: no parent
                parent = -1
            ann = raw.get("annotations") or {}
            layers.append(CacheLayer(raw["blob"], parent, ann.get("mediaType", ""), ann.get("diffID", ""),
                                     int(ann.get("size", 0) or 0), ann.get("createdAt", "")))
        records = []
        for raw in doc.get("records") or []:
            results = raw.get("layers") or []
            chains = raw.get("chains") or []
            layer = results[0]["layer"] if results else None
            if layer is None and chains and chains[0].get("layers"):
                layer = chains[0]["layers"][-1]
            inputs = [[CacheInput(int(i.get("link", 0)), i.get("selector", "")) for i in alts]
                      for alts in raw.get("inputs") or []]
            records.append(CacheRecord(raw["digest"], layer, inputs,
                                       results[0].get("createdAt", "") if results else ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise CacheFormatError(f"invalid cache config: {exc}") from exc
    return CacheConfig(layers, records)


# -- export ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResultBlob:
    """One layer of a result as the exporter knows it (from the layer exporter)."""

    digest: str
    media_type: str
    size: int
    diff_id: str


def build_config(keys: Mapping[str, SolvedKey], result_key: str,
                 blobs_of: Callable[[str, SolvedKey], Sequence[ResultBlob] | None],
                 created_at: str = "", *, every: bool = False) -> CacheConfig:
    """Records for `result_key` and everything it depends on; `blobs_of(key, solved)` gives the
    layers of a record's result, or None to export the record without one (mode=min).
    `every` adds the solve's other keys too (mode=max: steps the result does not depend on)."""
    config = CacheConfig()
    layer_index: dict[tuple[str, int], int] = {}
    record_index: dict[str, int] = {}

    def add_layers(blobs: Sequence[ResultBlob]) -> int:
        parent = -1
        for blob in blobs:
            key = (blob.digest, parent)
            if key not in layer_index:
                layer_index[key] = len(config.layers)
                config.layers.append(CacheLayer(blob.digest, parent, blob.media_type, blob.diff_id, blob.size,
                                                created_at))
            parent = layer_index[key]
        return parent

    def visit(key: str) -> int:
        found = record_index.get(key)
        if found is not None:
            return found
        solved = keys[key]
        inputs: list[list[CacheInput]] = []
        for dep in solved.parts.inputs:
            alternatives = []
            if dep.content or dep.key not in keys:
                link = record_index.get(dep.key)
                if link is None:
                    link = len(config.records)
                    config.records.append(CacheRecord(dep.key))
                    record_index[dep.key] = link
                alternatives.append(CacheInput(link, dep.selector))
            if dep.source in keys:
                # the producer's record too: an importer can match by it without the content
                alternatives.append(CacheInput(visit(dep.source), dep.selector))
            inputs.append(list(dict.fromkeys(alternatives)))
        blobs = blobs_of(key, solved)
        layer = add_layers(blobs) if blobs else None
        record = CacheRecord(root_key(solved.parts.digest, solved.parts.index), layer if layer != -1 else None,
                             inputs, created_at if layer is not None else "")
        record_index[key] = len(config.records)
        config.records.append(record)
        return record_index[key]

    if result_key in keys:
        visit(result_key)
    if every:
        for key in keys:
            visit(key)
    return config


# -- import ------------------------------------------------------------------------------------

Loader = Callable[[list[CacheLayer]], Awaitable[Result]]


class CacheIndex:
    """An imported cache config, answering the solver's lookups by linked key."""

    def __init__(self, config: CacheConfig, load: Loader, *, name: str) -> None:
        self.config = config
        self.name = name
        self._load = load
        self._by_digest: dict[str, list[int]] = {}
        for index, record in enumerate(config.records):
            self._by_digest.setdefault(record.digest, []).append(index)
        self._matched: dict[str, set[int]] = {}
        self._lazy: dict[int, LazyResult] = {}

    def _inputs_match(self, record: CacheRecord, parts: KeyParts) -> bool:
        if len(record.inputs) != len(parts.inputs):
            return False
        for alternatives, dep in zip(record.inputs, parts.inputs):
            if not any(self._link_matches(alt, dep.key, dep.selector, dep.content) for alt in alternatives):
                return False
        return True

    def _link_matches(self, alt: CacheInput, key: str, selector: str, content: bool) -> bool:
        if alt.selector != selector or not 0 <= alt.link < len(self.config.records):
            return False
        if content:
            return self.config.records[alt.link].digest == key
        return alt.link in self._matched.get(key, set())

    def lookup(self, key: str, parts: KeyParts) -> LazyResult | None:
        candidates = self._by_digest.get(root_key(parts.digest, parts.index), [])
        matched = {i for i in candidates if self._inputs_match(self.config.records[i], parts)}
        self._matched[key] = matched
        for index in sorted(matched):
            top = self.config.records[index].layer
            if top is None:
                continue
            lazy = self._lazy.get(top)
            if lazy is None:
                chain = self.config.chain(top)
                lazy = LazyResult(f"{self.name}:{self.config.layers[top].blob}",
                                  lambda chain=chain: self._load(chain), [layer.blob for layer in chain])
                self._lazy[top] = lazy
            return lazy
        return None
