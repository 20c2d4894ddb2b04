"""QEMU user emulation for foreign-architecture steps when no binfmt_misc handler exists.

With a handler registered (Debian's qemu-user-static, `pybuildkit-binfmt`, tonistiigi/binfmt)
the kernel runs foreign binaries by itself and nothing happens here. Without one, the matching
static emulator is bind-mounted read-only at /dev/.buildkit_qemu_emulator and prefixed to the
command, as BuildKit does. Handlers are recognised by what they match (their magic and mask
against the architecture's ELF header), not by their names, which differ between installers.
"""
from __future__ import annotations

from typing import Literal

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")

# GOARCH -> (QEMU's name, ELF class (1=32, 2=64 bit), data (1=LE, 2=BE), e_machine)
ARCHES: dict[str, tuple[str, int, int, int]] = {
    "amd64": ("x86_64", 2, 1, 62),
    "386": ("i386", 1, 1, 3),
    "arm64": ("aarch64", 2, 1, 183),
    "arm": ("arm", 1, 1, 40),
    "s390x": ("s390x", 2, 2, 22),
    "ppc64le": ("ppc64le", 2, 1, 21),
    "ppc64": ("ppc64", 2, 2, 21),
    "riscv64": ("riscv64", 2, 1, 243),
    "mips64le": ("mips64el", 2, 1, 8),
    "mips64": ("mips64", 2, 2, 8),
    "loong64": ("loongarch64", 2, 1, 258),
}
_MACHINE_TO_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x", "ppc64le": "ppc64le",
                      "i686": "386", "i386": "386", "armv7l": "arm", "armv6l": "arm", "riscv64": "riscv64",
                      "loongarch64": "loong64", "mips64": "mips64"}


def native_arch() -> str:
    machine = os.uname().machine
    return _MACHINE_TO_GOARCH.get(machine, machine)


def runs_natively(arch: str, native: str | None = None) -> bool:
    native = native or native_arch()
    return arch == native or (native, arch) in {("amd64", "386"), ("arm64", "arm")}


def elf_header(arch: str) -> bytes | None:
    """The first 20 bytes of an executable for `arch`, as binfmt_misc matches them."""
    entry = ARCHES.get(arch)
    if entry is None:
        return None
    _, elf_class, data, machine = entry
    order: Literal["little", "big"] = "little" if data == 1 else "big"
    ident = b"\x7fELF" + bytes([elf_class, data, 1]) + bytes(9)
    return ident + (2).to_bytes(2, order) + machine.to_bytes(2, order)


@dataclass(frozen=True)
class BinfmtEntry:
    name: str
    enabled: bool
    offset: int
    magic: bytes
    mask: bytes
    interpreter: str

    def matches(self, header: bytes) -> bool:
        window = header[self.offset:self.offset + len(self.magic)]
        if len(window) < len(self.magic):
            return False
        mask = self.mask or b"\xff" * len(self.magic)
        return all((b & m) == (g & m) for b, m, g in zip(window, mask, self.magic))


def read_binfmt_entries(directory: Path = BINFMT_MISC) -> list[BinfmtEntry]:
    """The magic-type handlers registered in this (user namespace's) binfmt_misc instance."""
    entries: list[BinfmtEntry] = []
    try:
        names = [p for p in directory.iterdir() if p.name not in ("register", "status")]
    except OSError:
        return entries
    for path in names:
        try:
            text = path.read_text()
        except OSError:
            continue
        fields: dict[str, str] = {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            fields.setdefault(key, value.strip())
        if "magic" not in fields:
            continue
        try:
            entries.append(BinfmtEntry(
                name=path.name, enabled=text.startswith("enabled"), offset=int(fields.get("offset", "0")),
                magic=bytes.fromhex(fields["magic"]), mask=bytes.fromhex(fields.get("mask", "")),
                interpreter=fields.get("interpreter", "")))
        except ValueError:
            continue
    return entries


def has_binfmt_handler(arch: str, entries: list[BinfmtEntry] | None = None) -> bool:
    header = elf_header(arch)
    if header is None:
        return False
    found = read_binfmt_entries() if entries is None else entries
    return any(e.enabled and e.matches(header) for e in found)


def find_emulator(arch: str, which: Callable[[str], str | None] = shutil.which) -> Path | None:
    """BuildKit's `buildkit-qemu-<arch>` first, then Debian's `qemu-<arch>-static`."""
    qemu = ARCHES.get(arch, (arch, 0, 0, 0))[0]
    for name in (f"buildkit-qemu-{qemu}", f"qemu-{qemu}-static"):
        found = which(name)
        if found and os.access(found, os.X_OK):
            return Path(os.path.realpath(found))
    return None


@dataclass(frozen=True)
class EmulatorPolicy:
    """Decides per step whether to inject an emulator. `handler_check` is replaceable so a
    caller (or a test) can force the fallback path on a host that has handlers."""

    handler_check: Callable[[str], bool] = has_binfmt_handler
    locate: Callable[[str], Path | None] = find_emulator

    def emulator_for(self, arch: str | None) -> Path | None:
        """The emulator to inject for `arch`, or None when the kernel can run it already (or
        when no emulator is installed: then the step fails with exec format error, as in
        BuildKit, and the caller should have warned)."""
        if not arch or runs_natively(arch) or self.handler_check(arch):
            return None
        return self.locate(arch)
