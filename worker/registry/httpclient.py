"""httpx, without its command-line tool: `import httpx` also imports `httpx._main`, which loads
click and rich when they are installed (as on Debian), ~40 ms of a daemon's first pull and of a
client's first token; nothing here runs httpx's CLI. httpx expects that import to fail when
those are missing, and a module set to None in sys.modules fails its import."""
from __future__ import annotations

import sys

if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    # HTTP/2 is never asked of a registry here; httpcore treats its http2 modules as optional
    # (as when h2 is missing) and h2's import is ~7 ms of every daemon start
    sys.modules.setdefault("httpcore._async.http2", None)  # type: ignore[arg-type]
    sys.modules.setdefault("httpcore._sync.http2", None)  # type: ignore[arg-type]

import httpx  # noqa: E402  (after the line above)

__all__ = ["httpx"]

