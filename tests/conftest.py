"""Fixtures shared by the whole suite: one real registry per run, seeded with the multi-arch base
images, and a builder configuration that uses it as docker.io's mirror.

Under CI (`CI=true`) a skipped test fails the run: a skip there means something the suite
promised to check was not checked. A test whose skip is expected even in CI says so with
`@pytest.mark.allow_skip_in_ci("reason")`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.base_image import push_base_images
from tests.fixtures.buildctl import BuildRun
from tests.fixtures.daemon import Daemon, start_daemon
from tests.fixtures.registry import Registry, start_registry
from tests.fixtures.shared import REPO, SHARED

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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that builds with `pybuildctl` runs through a long-running pybuildkitd (`--addr`) and through
    `--daemonless`; tests that crash or inspect the daemon itself are marked `daemonless`."""
    if "pybuildctl" in metafunc.fixturenames:
        only_daemonless = metafunc.definition.get_closest_marker("daemonless") is not None
        metafunc.parametrize("build_mode", ["daemonless"] if only_daemonless else ["daemon", "daemonless"])


@pytest.fixture
def pybuildctl(builder_config, tmp_path_factory, build_mode: str):
    """Returns run(args, stdin=..., root=...) -> BuildRun; each call is a new client process.

    In "daemon" mode the calls on the default root and config go to one pybuildkitd started for
    the test (as users share a daemon); a call naming another root or config is daemonless."""
    default_root = tmp_path_factory.mktemp("state")
    daemons: list[Daemon] = []

    def address(root: Path | None, config: Path | None) -> list[str]:
        if build_mode == "daemon" and root in (None, default_root) and config in (None, builder_config):
            if not daemons:
                daemons.append(start_daemon(default_root, builder_config, tmp_path_factory.mktemp("daemon-run")))
            return ["--addr", daemons[0].address]
        return ["--daemonless", "--root", str(root or default_root), "--config", str(config or builder_config)]

    def run(args: list[str], *, stdin: bytes | None = None, root: Path | None = None,
            check: bool = True, env: dict | None = None, config: Path | None = None) -> BuildRun:
        cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", *address(root, config), "build",
               "--progress", "rawjson", *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=600,
                              env={**os.environ, **(env or {})})
        stderr = proc.stderr.decode(errors="replace")
        events = []
        other = []
        for line in stderr.splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
            else:
                other.append(line)
        result = BuildRun(proc.returncode, "\n".join(other), events,
                          proc.stdout.decode(errors="replace") if proc.stdout else "")
        if check and proc.returncode != 0:
            daemon_log = f"\n--- daemon ---\n{daemons[0].log()[-4000:]}" if daemons else ""
            raise AssertionError(f"build failed ({proc.returncode}):\n{result.stderr}\n{result.logs()}{daemon_log}")
        return result

    run.default_root = default_root  # type: ignore[attr-defined]
    run.mode = build_mode  # type: ignore[attr-defined]
    try:
        yield run
    finally:
        for daemon in daemons:
            daemon.stop()
