"""Fixtures shared by the whole suite: one real registry per run, seeded with the multi-arch base
images, and a builder configuration that uses it as docker.io's mirror.

Under CI (`CI=true`) a skipped test fails the run: a skip there means something the suite
promised to check was not checked. A test whose skip is expected even in CI says so with
`@pytest.mark.allow_skip_in_ci("reason")`.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.base_image import push_base_images
from tests.fixtures.registry import Registry, start_registry

REPO = Path(__file__).resolve().parents[1]
# The shared data sits next to the main checkout; a worktree (/work/wt/NAME) is one level deeper.
SHARED = next((p / "shared" for p in REPO.parents if (p / "shared" / "conformance").is_dir()), REPO.parent / "shared")
ALLOW_SKIP_MARKER = "allow_skip_in_ci"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_root(why: str = "it mounts, unshares and starts containers") -> None:
    """Skip the calling test (or fixture) unless running as root."""
    if os.geteuid() != 0:
        pytest.skip(f"needs root: {why}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{ALLOW_SKIP_MARKER}(reason): a skip that is expected even under CI=true")


def _skip_reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_skip_in_ci(report: pytest.TestReport | pytest.CollectReport, node: pytest.Item | pytest.Collector) -> None:
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    if node.get_closest_marker(ALLOW_SKIP_MARKER) is not None:
        return
    reason = _skip_reason(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"skipped under CI=true, which fails the run: {reason}\n"
                       f"(mark the test @pytest.mark.{ALLOW_SKIP_MARKER}(reason) if this skip is expected in CI)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    _fail_skip_in_ci(outcome.get_result(), item)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """Module-level skips (`pytest.skip(allow_module_level=True)`) count too."""
    outcome = yield
    _fail_skip_in_ci(outcome.get_result(), collector)


@pytest.fixture
def root_only() -> None:
    """Request this fixture to skip a test that needs root."""
    require_root()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared next to the repository (conformance data, notes); may not exist."""
    return SHARED


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain-HTTP registry holding `library/busybox:latest` and `library/alpine:latest`.

    Root-only because everything that builds against it runs containers."""
    require_root("integration tests mount, unshare and start containers")
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
    """A pybuildkitd.toml that sends docker.io pulls to the test registry over plain HTTP."""
    path = tmp_path_factory.mktemp("config") / "pybuildkitd.toml"
    path.write_text(f'[registry."docker.io"]\nmirrors = ["{registry_host}"]\n\n'
                    f'[registry."{registry_host}"]\nhttp = true\n')
    return path


@pytest.fixture(scope="session")
def tls_registry_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Registry]]:
    """start(tls=True, htpasswd=None, token_auth=None) -> an extra, empty registry; all are
    stopped at the end of the session."""
    started: list[Registry] = []

    def start(*, tls: bool = True, htpasswd: tuple[str, str] | None = None,
              token_auth: dict | None = None) -> Registry:
        reg = start_registry(tmp_path_factory.mktemp("extra-registry"), tls=tls, htpasswd=htpasswd,
                             token_auth=token_auth)
        started.append(reg)
        return reg

    try:
        yield start
    finally:
        for reg in started:
            reg.stop()
