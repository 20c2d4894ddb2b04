"""Helpers for engine tests (the `pybuildctl` fixture itself is shared, in tests/conftest.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def llb_definition(script: str, *args: str) -> bytes:
    proc = subprocess.run([sys.executable, str(REPO / "examples" / script), *args],
                          capture_output=True, check=True)
    return proc.stdout
