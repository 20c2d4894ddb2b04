"""Where the upstream conformance data lives, and a pass-count report per module."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.shared import CONFORMANCE

DATA = CONFORMANCE


def require_data(sub: str) -> Path:
    path = DATA / sub
    if not path.is_dir():
        pytest.skip(f"conformance data not found at {path}: these checks did not run", allow_module_level=True)
    return path


SUMMARIES: dict[str, tuple[int, int]] = {}


def record_summary(name: str, passed: int, failed: int) -> None:
    """Counts that the terminal summary prints at the end of the run, outside captured output."""
    SUMMARIES[name] = (passed, failed)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not DATA.is_dir():
        terminalreporter.write_line(f"conformance data not found at {DATA}: conformance checks did not run")
        return
    for name, (passed, failed) in SUMMARIES.items():
        terminalreporter.write_line(f"{name} conformance: {passed} passed, {failed} failed")
