"""What resolving a base image asks the registry: the frontend resolves the tag and writes
`tag@digest` into the LLB, the image source then resolves that pin; the pin and a platform
manifest already in the content store are content-addressed, so they cost no request."""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pybuildkit.solver.platforms import parse_platform
from pybuildkit.worker.registry.client import RegistryClient
from pybuildkit.worker.registry.hosts import RegistryHostConfig
from pybuildkit.worker.registry.reference import parse_reference
from pybuildkit.worker.worker import Worker, WorkerConfig

pytestmark = pytest.mark.integration

AMD64 = parse_platform("linux/amd64")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The manifest and blob requests RegistryClient sends to the real registry, by path."""
    seen: Counter[str] = Counter()
    send = RegistryClient._send

    async def counting(self, endpoint, method, url, **kwargs):
        seen[url.split("/v2/", 1)[-1]] += 1
        return await send(self, endpoint, method, url, **kwargs)

    monkeypatch.setattr(RegistryClient, "_send", counting)
    return seen


def test_the_pin_the_frontend_writes_resolves_without_another_request(tmp_path: Path, registry_host: str,
                                                                     counted: Counter[str]) -> None:
    async def scenario(worker: Worker) -> None:
        tag = f"{registry_host}/library/busybox:latest"
        by_tag = await worker.resolve_image(tag, AMD64)
        asked = sum(counted.values())
        pinned = await worker.resolve_image(f"{tag}@{by_tag.root_digest}", AMD64)
        assert sum(counted.values()) == asked
        assert pinned.config == by_tag.config and pinned.manifest_digest == by_tag.manifest_digest

    _in_a_worker(tmp_path, registry_host, scenario)


def test_a_platform_manifest_in_the_store_is_not_fetched_again(tmp_path: Path, registry_host: str,
                                                               counted: Counter[str]) -> None:
    async def scenario(worker: Worker) -> None:
        reference = parse_reference(f"{registry_host}/library/busybox:latest")
        first = await worker.registry.resolve(reference, AMD64)
        counted.clear()
        again = await worker.registry.resolve(reference, AMD64)
        assert list(counted) == ["library/busybox/manifests/latest"]  # the tag only: it may have moved
        assert again.manifest_digest == first.manifest_digest and again.config == first.config

    _in_a_worker(tmp_path, registry_host, scenario)


def _in_a_worker(tmp_path: Path, registry_host: str, scenario: Callable[[Worker], Awaitable[None]]) -> None:
    worker = Worker(WorkerConfig(root=tmp_path / "root", registries={registry_host: RegistryHostConfig(http=True)}))

    async def run() -> None:
        try:
            await scenario(worker)
        finally:
            await worker.registry.aclose()

    try:
        asyncio.run(run())
    finally:
        worker.close()
