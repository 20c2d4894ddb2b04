"""Numbers in flag and instruction values, parsed with an error that names where they came from.

Python's int() accepts what Go's strconv.Atoi does not (`²`, `1_000`, surrounding blanks) and
rejects the rest with a bare ValueError; every Dockerfile number goes through here instead.
"""
from __future__ import annotations

import re

from pybuildkit.frontend.dockerfile.instructions.errors import DockerfileError

_DECIMAL = re.compile(r"[+-]?[0-9]{1,18}")  # fits Go's int64, so no bignum surprises


def is_number(text: str) -> bool:
    """True for plain ASCII decimal digits (what a uid, gid or stage index may be)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def parse_int(what: str, text: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """`text` as a decimal integer; `what` names the flag or field in the error (`--retries`)."""
    if _DECIMAL.fullmatch(text) is None:
        raise DockerfileError(f"invalid value {_shown(text)} for {what}: expected an integer")
    value = int(text)
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        low = "" if minimum is None else f" from {minimum}"
        high = "" if maximum is None else f" to {maximum}"
        raise DockerfileError(f"invalid value {_shown(text)} for {what}: expected an integer{low}{high}")
    return value

