"""Writing and removing binfmt_misc entries, only ever our own (`pybuildkit-<arch>`).

Magic and mask follow qemu-binfmt-conf: the ELF identification of the class and byte order,
e_type EXEC or DYN (the low bit of e_type is masked), and e_machine.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from pybuildkit.binfmt.emulator import ARCHES, BINFMT_MISC, BinfmtEntry, read_binfmt_entries

PREFIX = "pybuildkit-"


class BinfmtError(Exception):
    """A registration the kernel refused; the message names the entry and the fix."""


def magic_and_mask(arch: str) -> tuple[bytes, bytes]:
    _qemu, elf_class, data, machine = ARCHES[arch]
    order = "little" if data == 1 else "big"
    magic = (b"\x7fELF" + bytes([elf_class, data, 1]) + bytes(9) + (2).to_bytes(2, order)  # type: ignore[arg-type]
             + machine.to_bytes(2, order))  # type: ignore[arg-type]
    e_type_mask = b"\xfe\xff" if data == 1 else b"\xff\xfe"
    mask = b"\xff\xff\xff\xff\xff\xfe\xfe\x00" + b"\xff" * 8 + e_type_mask + b"\xff\xff"
    return magic, mask


def _escape(data: bytes) -> str:
    return "".join(f"\\x{b:02x}" for b in data)


@dataclass(frozen=True)
class Registration:
    arch: str
    interpreter: str
    flags: str

    @property
    def name(self) -> str:
        return PREFIX + self.arch

    def line(self) -> str:
        magic, mask = magic_and_mask(self.arch)
        return f":{self.name}:M:0:{_escape(magic)}:{_escape(mask)}:{self.interpreter}:{self.flags}"


def register(reg: Registration, directory: Path = BINFMT_MISC) -> None:
    if (directory / reg.name).exists():
        unregister(reg.arch, directory)
    try:
        with open(directory / "register", "w") as handle:
            handle.write(reg.line())
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise BinfmtError(f"{directory} is not mounted (mount -t binfmt_misc binfmt_misc {directory})") from exc
        raise BinfmtError(f"registering {reg.name} ({reg.interpreter}, flags {reg.flags}) failed: "
                          f"{os.strerror(exc.errno or 0)}") from exc


def unregister(arch: str, directory: Path = BINFMT_MISC) -> bool:
    """Remove our entry for `arch`; entries of other installers are never touched."""
    path = directory / (PREFIX + arch)
    if not path.exists():
        return False
    with open(path, "w") as handle:
        handle.write("-1")
    return True


def ours(entries: list[BinfmtEntry] | None = None) -> list[BinfmtEntry]:
    return [e for e in (read_binfmt_entries() if entries is None else entries) if e.name.startswith(PREFIX)]


def interpreter_for(arch: str) -> tuple[str, str] | None:
    """(interpreter, flags) for `arch`: Debian's preserve-argv0 wrapper with P, else the static
    QEMU binary; F always (opened now, so it works inside containers and namespaces)."""
    qemu = ARCHES[arch][0]
    wrapper = Path(f"/usr/libexec/qemu-binfmt/{qemu}-binfmt-P")
    if wrapper.exists():
        return str(wrapper), "PF"
    for candidate in (Path(f"/usr/bin/qemu-{qemu}-static"), Path(f"/usr/bin/buildkit-qemu-{qemu}")):
        if candidate.exists():
            return str(candidate), "F"
    return None
