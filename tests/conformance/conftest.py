"""Where the upstream conformance data lives, and a pass-count report per module."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(os.environ.get("PYBUILDKIT_CONFORMANCE") or Path(__file__).resolve().parents[3] / "shared" / "conformance")


def require_data(sub: str) -> Path:
    path = DATA / sub
    if not path.is_dir():
        pytest.skip(f"conformance data not found at {path}: these checks did not run", allow_module_level=True)
    return path
