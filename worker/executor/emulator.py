"""QEMU user emulation for foreign-architecture steps when no binfmt_misc handler exists.

With a handler registered (the normal case, see pybuildkit-binfmt), the kernel runs foreign
binaries by itself and nothing happens here. Without one, the matching static emulator is
bind-mounted into the container and prefixed to the command, as BuildKit does.
"""
from __future__ import annotations

import os
import platform as host
import shutil
from functools import lru_cache
from pathlib import Path

QEMU_ARCH = {"amd64": "x86_64", "arm64": "aarch64", "arm": "arm", "386": "i386", "s390x": "s390x",
             "ppc64le": "ppc64le", "riscv64": "riscv64", "mips64le": "mips64el", "mips64": "mips64",
             "loong64": "loongarch64", "ppc64": "ppc64"}
_HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "s390x": "s390x", "ppc64le": "ppc64le",
              "i686": "386", "armv7l": "arm", "riscv64": "riscv64"}
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def native_arch() -> str:
    return _HOST_ARCH.get(host.machine(), host.machine())


def _runs_natively(arch: str) -> bool:
    native = native_arch()
    return arch == native or (native == "amd64" and arch == "386") or (native == "arm64" and arch == "arm")


@lru_cache(maxsize=None)
def has_binfmt_handler(arch: str) -> bool:
    qemu = QEMU_ARCH.get(arch, arch)
    for name in (f"qemu-{qemu}", f"buildkit-qemu-{qemu}"):
        entry = BINFMT / name
        try:
            if entry.exists() and entry.read_text().startswith("enabled"):
                return True
        except OSError:
            continue
    return False


def emulator_for(arch: str | None) -> Path | None:
    """The emulator to inject for `arch`, or None when the kernel can run it already."""
    if not arch or _runs_natively(arch) or has_binfmt_handler(arch):
        return None
    qemu = QEMU_ARCH.get(arch, arch)
    for name in (f"buildkit-qemu-{qemu}", f"qemu-{qemu}-static", f"qemu-{qemu}"):
        found = shutil.which(name)
        if found and os.access(found, os.X_OK):
            return Path(found)
    return None
