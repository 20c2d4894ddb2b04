"""The golden definitions from upstream: load, re-marshal byte for byte, rebuild with our API."""
from __future__ import annotations

import json

import pytest

from pybuildkit.solver.llb import builder as llb
from pybuildkit.solver.llb.marshal import digest_of, marshal_op
from pybuildkit.solver.pb import ops_pb2 as pb
from pybuildkit.solver.platforms import Platform
from tests.fixtures.shared import SHARED

GOLDEN = SHARED / "compat" / "llb-golden"
AMD64 = Platform("linux", "amd64")
IMAGE = "127.0.0.1:5300/busybox:latest"

pytestmark = pytest.mark.skipif(not GOLDEN.is_dir(), reason=f"no golden LLB data at {GOLDEN}")


def load(name: str) -> tuple[pb.Definition, dict[str, str]]:
    definition = pb.Definition()
    definition.ParseFromString((GOLDEN / f"{name}.def.pb").read_bytes())
    return definition, json.loads((GOLDEN / f"{name}.digests.json").read_text())


@pytest.mark.parametrize("name", ["fileops", "mounts"])
def test_golden_ops_remarshal_to_identical_bytes(name: str) -> None:
    definition, _ = load(name)
    for raw in getattr(definition, "def"):
        op = pb.Op()
        op.ParseFromString(raw)
        assert marshal_op(op) == raw


@pytest.mark.parametrize("name", ["fileops", "mounts"])
def test_golden_digests_are_sha256_of_op_bytes(name: str) -> None:
    definition, digests = load(name)
    ours = {digest_of(raw) for raw in getattr(definition, "def")}
    assert ours == set(digests.values())


def test_builder_rebuilds_fileops_golden() -> None:
    definition, digests = load("fileops")
    base = llb.image(IMAGE, constraints=llb.Constraints(custom_name=f"golden image {IMAGE}"))
    action = (llb.mkdir("/d", 0o755, make_parents=True)
              .mkfile("/d/hello.txt", 0o644, b"hello-llb\n")
              .copy(base, "/etc/passwd", "/d/passwd", create_dest_path=True,
                    allow_wildcard=True, allow_empty_wildcard=True))
    state = llb.scratch().file(action, llb.Constraints(custom_name="golden fileops"))
    rebuilt = state.marshal(AMD64)
    assert [digest_of(raw) for raw in getattr(rebuilt, "def")] == [
        digests["image"], digests["file"], digests["(terminal)"]]
    assert getattr(rebuilt, "def") == getattr(definition, "def")
    assert dict(rebuilt.metadata) == dict(definition.metadata)


def test_builder_rebuilds_mounts_golden() -> None:
    definition, digests = load("mounts")
    base = llb.image(IMAGE, constraints=llb.Constraints(custom_name=f"golden image {IMAGE}"))
    src = llb.scratch().file(
        llb.mkdir("/sub", 0o755, make_parents=True).mkfile("/sub/in.txt", 0o644, b"bound\n"),
        llb.Constraints(custom_name="golden bind source"))
    exec_op = pb.Op()
    exec_op.ParseFromString(getattr(definition, "def")[2])
    script = exec_op.exec.meta.args[2]
    state = (base.add_env("PATH", llb.DEFAULT_PATH).add_env("GOLDEN_NONCE", "golden"))
    run = state.run(
        ["/bin/sh", "-c", script],
        mounts=[
            llb.Mount("/in", src, selector="/sub", readonly=True),
            llb.Mount("/out", llb.scratch()),
            llb.Mount("/cache", cache_id="golden-cache", cache_sharing=pb.LOCKED),
            llb.Mount("/tmpfs", tmpfs=True, tmpfs_size=16 << 20),
        ],
        secrets=[llb.SecretMount("goldensecret", target="/run/secrets/goldensecret", optional=True)],
        constraints=llb.Constraints(custom_name="golden mounts"),
    )
    rebuilt = run.get_mount("/out").marshal(AMD64)
    assert [digest_of(raw) for raw in getattr(rebuilt, "def")] == [
        digests["image"], digests["src"], digests["exec"], digests["(terminal)"]]
    assert dict(rebuilt.metadata) == dict(definition.metadata)


def test_image_reference_is_normalised_like_go_llb() -> None:
    definition = llb.image("busybox").marshal(AMD64)
    op = pb.Op()
    op.ParseFromString(getattr(definition, "def")[0])
    assert op.source.identifier == "docker-image://docker.io/library/busybox:latest"
