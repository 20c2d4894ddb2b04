"""Start-up cost guards: what a process imports before it needs it is time on every build
(each `pybuildctl`, each `--daemonless` daemon). Checked in fresh interpreters."""
from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(m for m, v in sys.modules.items() if v))"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return set(out.split())


def test_our_httpx_leaves_its_command_line_tool_unloaded() -> None:
    loaded = _modules_after("from pybuildkit.worker.registry.httpclient import httpx\nhttpx.AsyncClient")
    assert "httpx" in loaded and not loaded & {"httpx._main", "click", "rich"}


def test_our_httpx_leaves_http2_unloaded_and_still_makes_a_client() -> None:
    loaded = _modules_after("from pybuildkit.worker.registry.httpclient import httpx\nhttpx.AsyncClient()")
    assert "httpcore" in loaded and "h2" not in loaded


def test_the_client_reads_its_flags_without_grpc() -> None:
    """A --daemonless build starts its daemon before the client imports grpc, so that the two
    start-ups overlap."""
    loaded = _modules_after("from pybuildkit.appliance.cli.main import build_parser\n"
                            "build_parser().parse_args(['--daemonless', 'build'])")
    assert "grpc" not in loaded


def test_a_daemonless_client_starts_its_daemon_before_it_imports_asyncio(tmp_path) -> None:
    """asyncio is ~35 ms of the client's start; the daemon's start overlaps it (the daemon
    started here stops as this interpreter exits: it dies with its parent)."""
    loaded = _modules_after("from pybuildkit.appliance.cli.main import build_parser, _start_private_daemon\n"
                            f"_start_private_daemon(build_parser().parse_args(['--daemonless', '--root', '{tmp_path}', 'build']))")
    assert "asyncio" not in loaded and "grpc" not in loaded
