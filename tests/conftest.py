"""Fixtures shared by the whole suite: one real registry per run, seeded with the multi-arch base
images, and a builder configuration that uses it as docker.io's mirror.

Under CI (`CI=true`) a skipped test fails the run: a skip there means something the suite
promised to check was not checked.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.base_image import push_base_images
from tests.fixtures.registry import Registry, start_registry

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_skip_in_ci(reason): a skip that is expected even in CI")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("allow_skip_in_ci") is None:
        if not hasattr(report, "wasxfail"):
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            report.outcome = "failed"
            report.longrepr = f"skipped under CI=true, which must not happen: {reason}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    if os.geteuid() != 0:
        pytest.skip("integration tests run as root (they mount, unshare and start containers)")
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        push_base_images(reg)
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def registry_host(registry: Registry) -> str:
    return registry.host


@pytest.fixture(scope="session")
def base_image(registry_host: str) -> str:
    return f"{registry_host}/library/busybox:latest"


@pytest.fixture(scope="session")
def builder_config(tmp_path_factory: pytest.TempPathFactory, registry_host: str) -> Path:
    path = tmp_path_factory.mktemp("config") / "pybuildkitd.toml"
    path.write_text(f'[registry."docker.io"]\nmirrors = ["{registry_host}"]\n\n'
                    f'[registry."{registry_host}"]\nhttp = true\n')
    return path


@pytest.fixture(scope="session")
def tls_registry_factory(tmp_path_factory: pytest.TempPathFactory):
    started: list[Registry] = []

    def start(*, tls: bool = True, htpasswd: tuple[str, str] | None = None) -> Registry:
        reg = start_registry(tmp_path_factory.mktemp("extra-registry"), tls=tls, htpasswd=htpasswd)
        started.append(reg)
        return reg

    yield start
    for reg in started:
        reg.stop()
