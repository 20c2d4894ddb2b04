"""Symbolic modes for COPY --chmod (`u+x`, `go=rx`, `a-w,u+s`), applied like chmod(1)."""
from __future__ import annotations

import re

from pybuildkit.worker.ops.fileops.actions import FileOpError

_CLAUSE = re.compile(r"^([ugoa]*)([-+=])([rwxXst]*)$")
_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}


def apply_mode_str(text: str, current: int, is_dir: bool) -> int:
    if re.fullmatch(r"[0-7]{1,4}", text):
        return int(text, 8)
    mode = current
    for clause in text.split(","):
        match = _CLAUSE.match(clause.strip())
        if not match:
            raise FileOpError(f"invalid chmod parameter: {text!r}")
        who, op, perms = match.groups()
        mask = 0
        for w in (who or "a"):
            mask |= 0o7777 if w == "a" else _WHO[w]
        bits = 0
        for p in perms:
            if p == "r":
                bits |= 0o444
            elif p == "w":
                bits |= 0o222
            elif p == "x" or (p == "X" and (is_dir or current & 0o111)):
                bits |= 0o111
            elif p == "s":
                bits |= 0o6000
            elif p == "t":
                bits |= 0o1000
        bits &= mask
        if op == "+":
            mode |= bits
        elif op == "-":
            mode &= ~bits
        else:
            mode = (mode & ~(mask & 0o7777)) | bits
    return mode & 0o7777
