"""The Dockerfile frontend asks the image resolver once per image and platform in a
conversion, as BuildKit's image meta resolver does: stages on one base share the answer."""
from __future__ import annotations

import asyncio
from collections import Counter

from pybuildkit.frontend.dockerfile.builder import FrontendInputs, build
from pybuildkit.solver.platforms import Platform, parse_platform

CONFIG = {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}


def _convert(dockerfile: bytes, attrs: dict[str, str] | None = None) -> Counter[tuple[str, str]]:
    asked: Counter[tuple[str, str]] = Counter()

    async def resolver(ref: str, platform: Platform) -> tuple[str, dict]:
        asked[(ref, str(platform))] += 1
        await asyncio.sleep(0.01)  # concurrent stages wait for the lookup in flight
        return ref + "@sha256:" + "a" * 64, CONFIG

    inputs = FrontendInputs(dockerfile=dockerfile, dockerfile_name="Dockerfile", dockerignore=None,
                            attrs=attrs or {}, build_platform=parse_platform("linux/amd64"),
                            resolve_image_config=resolver)
    asyncio.run(build(inputs))
    return asked


def test_stages_on_one_base_image_look_it_up_once() -> None:
    asked = _convert(b"FROM busybox AS a\nRUN true\nFROM busybox AS b\nRUN true\nFROM alpine\n"
                     b"COPY --from=a /x /a\nCOPY --from=b /x /b\n")
    assert asked == Counter({("docker.io/library/busybox:latest", "linux/amd64"): 1,
                             ("docker.io/library/alpine:latest", "linux/amd64"): 1})


def test_one_image_for_two_platforms_is_looked_up_for_each() -> None:
    asked = _convert(b"FROM busybox\nRUN true\n", {"platform": "linux/amd64,linux/arm64"})
    assert sorted(asked.values()) == [1, 1] and {p for _, p in asked} == {"linux/amd64", "linux/arm64"}
