"""The cacheconfig.v0 document: upstream's field names and index rules, and key matching by links."""
from __future__ import annotations

import asyncio
import json

import pytest
from pybuildkit.appliance.cache_options import parse_cache_options
from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.scheduler import InputKey, KeyParts, SolvedKey
from pybuildkit.worker.remotecache.format import (
    CacheIndex,
    ResultBlob,
    build_config,
    parse_config,
    root_key,
)
from pybuildkit.worker.remotecache.options import Mode, parse_export

UPSTREAM_SHAPED = {
    "layers": [
        {"blob": "sha256:" + "a" * 64, "parent": -1,
         "annotations": {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "diffID": "sha256:" + "1" * 64,
                         "size": 10, "createdAt": "2024-01-01T00:00:00Z"}},
        {"blob": "sha256:" + "b" * 64,
         "annotations": {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "diffID": "sha256:" + "2" * 64}},
    ],
    "records": [
        {"digest": "sha256:" + "c" * 64, "layers": [{"layer": 0, "createdAt": "2024-01-01T00:00:00Z"}]},
        {"digest": "sha256:" + "d" * 64, "layers": [{"layer": 1}], "inputs": [[{"link": 0}]]},
    ],
}


def _blob(char: str) -> ResultBlob:
    return ResultBlob("sha256:" + char * 64, "application/vnd.oci.image.layer.v1.tar+gzip", 5, "sha256:" + char * 64)


def _two_steps() -> dict[str, SolvedKey]:
    base = SolvedKey(KeyParts("sha256:base", 0, ()), "v1", object())
    step = SolvedKey(KeyParts("sha256:step", 0, (InputKey("k-base", "", False, "k-base"),)), "v2", object())
    return {"k-base": base, "k-step": step}


def test_an_omitted_parent_means_layer_zero_and_minus_one_means_none() -> None:
    config = parse_config(json.dumps(UPSTREAM_SHAPED).encode())
    assert [layer.parent for layer in config.layers] == [-1, 0]
    assert [layer.blob for layer in config.chain(1)] == ["sha256:" + "a" * 64, "sha256:" + "b" * 64]


def test_written_configs_use_upstreams_field_names_and_omit_parent_zero() -> None:
    blobs = {"k-base": [_blob("a")], "k-step": [_blob("a"), _blob("b")]}
    config = build_config(_two_steps(), "k-step", lambda key, _s: blobs[key], "2024-01-01T00:00:00Z")
    doc = json.loads(config.to_bytes())
    assert set(doc) == {"layers", "records"}
    assert doc["layers"][0]["parent"] == -1 and "parent" not in doc["layers"][1]
    assert set(doc["layers"][0]["annotations"]) == {"mediaType", "diffID", "size", "createdAt"}
    step = doc["records"][-1]
    assert step["digest"] == root_key("sha256:step", 0)
    assert step["layers"][0]["layer"] == 1 and step["inputs"] == [[{"link": 0}]]
    assert parse_config(config.to_bytes()).to_json() == doc


def test_a_record_matches_only_when_its_links_match_the_dependencies() -> None:
    config = build_config(_two_steps(), "k-step", lambda key, _s: [_blob("a")] if key == "k-step" else None)
    index = CacheIndex(config, lambda chain: asyncio.sleep(0), name="t")
    other_base = KeyParts("sha256:other", 0, ())
    index.lookup("k-other", other_base)
    step_on_other = KeyParts("sha256:step", 0, (InputKey("k-other", "", False, "k-other"),))
    assert index.lookup("k-step2", step_on_other) is None
    assert index.lookup("k-base", KeyParts("sha256:base", 0, ())) is None  # a record without a result
    assert index.lookup("k-step", _two_steps()["k-step"].parts) is not None


def test_cache_options_reject_unknown_types_and_options_by_name() -> None:
    with pytest.raises(BuildError, match="'bogus'"):
        parse_cache_options(["type=bogus"], "--export-cache")
    with pytest.raises(BuildError, match="'colour'"):
        parse_cache_options(["type=registry,ref=r/x,colour=red"], "--export-cache")
    with pytest.raises(BuildError, match="requires dest"):
        parse_cache_options(["type=local"], "--export-cache")
    with pytest.raises(BuildError, match="mode"):
        parse_cache_options(["type=registry,ref=r/x,mode=medium"], "--export-cache")
    with pytest.raises(BuildError, match="'mode'"):
        parse_cache_options(["type=registry,ref=r/x,mode=max"], "--import-cache")


def test_cache_options_follow_buildctl_defaults() -> None:
    assert parse_cache_options(["reg.example/cache:tag"], "--import-cache") == [("registry", {"ref": "reg.example/cache:tag"})]
    spec = parse_export("registry", {"ref": "r/x"})
    assert (spec.mode, spec.oci_mediatypes, spec.image_manifest, spec.cache_mounts) == (Mode.MIN, True, True, False)
    assert parse_export("registry", {"ref": "r/x", "oci-mediatypes": "false"}).image_manifest is False
