"""Small state files one daemon leaves for the next (a mirror's state, pending link claims):
marshal'd values written atomically, with a format line and a digest, so that a torn, foreign
or older file reads as nothing rather than as wrong data. Each is only ever a shortcut: when it
cannot be read, the daemon does the work again."""
from __future__ import annotations

import hashlib
import marshal
import os
import sys
from pathlib import Path
from typing import Any

#: marshal's format belongs to the interpreter: a file written by another version is not read
_PYTHON = f"py{sys.version_info[0]}.{sys.version_info[1]}"


def _magic(kind: str) -> bytes:
    return f"pbk-{kind} {_PYTHON}\n".encode()


def write_sealed(path: Path, kind: str, value: Any) -> None:
    payload = marshal.dumps(value)
    temp = path.with_name(path.name + ".tmp")
    try:
        with open(temp, "wb") as out:
            out.write(_magic(kind) + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)


def read_sealed(path: Path, kind: str, *, remove: bool = False) -> Any | None:
    """The value written as `kind`, or None; `remove`: the file is deleted as it is read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if remove:
        path.unlink(missing_ok=True)
    magic = _magic(kind)
    if not data.startswith(magic):
        return None
    digest, _, payload = data[len(magic):].partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        return None
    try:
        return marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return None
