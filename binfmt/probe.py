"""Which platforms this host can run, proven by running a tiny static program for each (what
BuildKit's archutil does with its per-architecture exit programs), never by reading files.

Each program is an ELF executable of one PT_LOAD segment whose code calls exit(0); a platform
runs when the kernel starts it (natively or through a binfmt_misc handler) and it exits 0.
"""
from __future__ import annotations

import functools
import os
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pybuildkit.binfmt.emulator import (ARCHES, BinfmtEntry, elf_header, find_emulator, native_arch,
                                        read_binfmt_entries)

BASE = 0x10000
PROBE_TIMEOUT = 20.0  # seconds for all exit programs together (a stuck emulator)

# GOARCH -> (machine code of exit(0), e_flags)
_EXIT: dict[str, tuple[bytes, int]] = {
    "amd64": (bytes.fromhex("b83c00000031ff0f05"), 0),
    "386": (bytes.fromhex("b80100000031dbcd80"), 0),
    "arm64": (struct.pack("<3I", 0xD2800BA8, 0xD2800000, 0xD4000001), 0),
    "arm": (struct.pack("<3I", 0xE3A07001, 0xE3A00000, 0xEF000000), 0x05000000),
    "s390x": (bytes.fromhex("a72900000a01"), 0),
    "ppc64le": (struct.pack("<3I", 0x38000001, 0x38600000, 0x44000002), 2),
    "ppc64": (struct.pack(">3I", 0x38000001, 0x38600000, 0x44000002), 2),
    "riscv64": (struct.pack("<3I", 0x05D00893, 0x00000513, 0x00000073), 0),
    "mips64le": (struct.pack("<3I", 0x640213C2, 0x0000202D, 0x0000000C), 0x80000006),
    "mips64": (struct.pack(">3I", 0x640213C2, 0x0000202D, 0x0000000C), 0x80000006),
    "loong64": (struct.pack("<3I", 0x0281740B, 0x02800004, 0x002B0000), 0x43),
}
#: BuildKit's order after the native platform
ORDER = ("amd64", "arm64", "riscv64", "ppc64", "ppc64le", "s390x", "386", "mips64le", "mips64", "loong64", "arm")


def exit_program(arch: str) -> bytes:
    """A complete static ELF executable for `arch` that exits 0."""
    code, flags = _EXIT[arch]
    _qemu, elf_class, data, machine = ARCHES[arch]
    e = "<" if data == 1 else ">"
    ident = b"\x7fELF" + bytes([elf_class, data, 1, 0]) + bytes(8)
    if elf_class == 2:
        entry = BASE + 64 + 56
        size = 64 + 56 + len(code)
        header = ident + struct.pack(e + "HHIQQQIHHHHHH", 2, machine, 1, entry, 64, 0, flags, 64, 56, 1, 0, 0, 0)
        phdr = struct.pack(e + "IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)
    else:
        entry = BASE + 52 + 32
        size = 52 + 32 + len(code)
        header = ident + struct.pack(e + "HHIIIIIHHHHHH", 2, machine, 1, entry, 52, 0, flags, 52, 32, 1, 0, 0, 0)
        phdr = struct.pack(e + "IIIIIIII", 1, 0, BASE, BASE, size, size, 5, 0x1000)
    return header + phdr + code


@dataclass(frozen=True)
class PlatformStatus:
    platform: str
    arch: str
    how: str  # native | binfmt | fallback | unavailable
    handler: str = ""
    interpreter: str = ""
    flags: str = ""
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        out = {"platform": self.platform, "how": self.how}
        for key in ("handler", "interpreter", "flags", "detail"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


def _platforms_of(arch: str) -> list[str]:
    return ["linux/arm/v7", "linux/arm/v6"] if arch == "arm" else [f"linux/{arch}"]


def runs(arch: str, directory: Path | None = None) -> tuple[bool, str]:
    """Run the exit program for `arch`; (it ran, why not)."""
    return run_all([arch], directory)[arch]


def run_all(arches: list[str], directory: Path | None = None) -> dict[str, tuple[bool, str]]:
    """Run the exit programs of `arches` all at once (each emulator's start is a few ms of
    waiting; one after the other they were ~0.1 s); arch -> (it ran, why not)."""
    outcome: dict[str, tuple[bool, str]] = {}
    with tempfile.TemporaryDirectory(prefix="pbk-binfmt-", dir=directory) as tmp:
        started: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for arch in arches:
                path = Path(tmp) / f"exit-{arch}"
                path.write_bytes(exit_program(arch))
                path.chmod(0o755)
                try:
                    started[arch] = subprocess.Popen([str(path)], stdin=subprocess.DEVNULL,
                                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                except OSError as exc:
                    outcome[arch] = (False, exc.strerror or str(exc))
            deadline = time.monotonic() + PROBE_TIMEOUT
            for arch, proc in started.items():
                try:
                    code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    outcome[arch] = (False, "timed out")
                    continue
                outcome[arch] = (code == 0, "" if code == 0 else f"exit code {code}")
        finally:
            for proc in started.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    return {arch: outcome[arch] for arch in arches}


def _handler(arch: str, entries: list[BinfmtEntry]) -> BinfmtEntry | None:
    header = elf_header(arch)
    if header is None:
        return None
    return next((e for e in entries if e.enabled and e.matches(header)), None)


def status(*, flags_of: dict[str, str] | None = None) -> list[PlatformStatus]:
    native = native_arch()
    entries = read_binfmt_entries()
    flags_of = flags_of if flags_of is not None else _entry_flags()
    out: list[PlatformStatus] = []
    arches = [a for a in [native] + [a for a in ORDER if a != native] if a in ARCHES]
    ran_all = run_all(arches)
    for arch in arches:
        ran, why = ran_all[arch]
        entry = _handler(arch, entries)
        if ran:
            how, handler = ("binfmt", entry.name) if entry is not None and arch != native else ("native", "")
        else:
            emulator = find_emulator(arch)
            how, handler = ("fallback", "") if emulator else ("unavailable", "")
            if emulator:
                why = f"no working handler ({why}); steps run through {emulator}"
        for platform in _platforms_of(arch):
            out.append(PlatformStatus(platform, arch, how, handler,
                                      entry.interpreter if entry and how == "binfmt" else "",
                                      flags_of.get(entry.name, "") if entry and how == "binfmt" else "", why))
    return out


def _entry_flags() -> dict[str, str]:
    from pybuildkit.binfmt.emulator import BINFMT_MISC

    out: dict[str, str] = {}
    try:
        names = os.listdir(BINFMT_MISC)
    except OSError:
        return out
    for name in names:
        try:
            for line in (BINFMT_MISC / name).read_text().splitlines():
                if line.startswith("flags:"):
                    out[name] = line.split(":", 1)[1].strip()
        except OSError:
            continue
    return out


@functools.lru_cache(maxsize=1)
def supported_platforms() -> tuple[str, ...]:
    """The platforms steps can run on, native first (cached for the process)."""
    return tuple(s.platform for s in status() if s.how != "unavailable")

