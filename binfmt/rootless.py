"""A private binfmt_misc instance for a rootless daemon (Linux >= 6.7 gives each user namespace
its own): mounted over /proc/sys/fs/binfmt_misc in the daemon's mount namespace and filled with
`F` handlers for the emulators installed on the host, so no root step is needed and the host's
instance stays exactly as it is. On older kernels the host's handlers stay visible, and steps
without one fall back to the injected emulator."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from dataclasses import dataclass, field

from pybuildkit.binfmt.emulator import ARCHES, BINFMT_MISC, native_arch, runs_natively
from pybuildkit.binfmt.register import BinfmtError, Registration, interpreter_for, register

MIN_KERNEL = (6, 7)


@dataclass
class RootlessBinfmtReport:
    mounted: bool = False
    registered: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    fallback: str = ""

    def summary(self) -> str:
        if not self.mounted:
            return f"binfmt: using the host's handlers ({self.fallback})"
        text = f"binfmt: private instance with {len(self.registered)} handlers ({', '.join(self.registered)})"
        if self.missing:
            text += f"; no emulator for {', '.join(self.missing)}"
        return text


def kernel_version() -> tuple[int, int]:
    release = os.uname().release.split("-")[0].split(".")
    try:
        return int(release[0]), int(release[1])
    except (IndexError, ValueError):
        return (0, 0)


def _mount_binfmt() -> str | None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mount(b"binfmt_misc", bytes(BINFMT_MISC), b"binfmt_misc", 0, None) != 0:
        return os.strerror(ctypes.get_errno())
    return None


def setup_private_binfmt(*, archs: tuple[str, ...] | None = None) -> RootlessBinfmtReport:
    """Call inside the daemon's user and mount namespace, before any step runs."""
    report = RootlessBinfmtReport()
    if kernel_version() < MIN_KERNEL:
        report.fallback = f"kernel {'.'.join(map(str, kernel_version()))} < 6.7 has no per-namespace instance"
        return report
    problem = _mount_binfmt()
    if problem is not None:
        report.fallback = f"mounting a private binfmt_misc failed: {problem}"
        return report
    report.mounted = True
    native = native_arch()
    for arch in archs or tuple(ARCHES):
        if runs_natively(arch, native):
            continue
        found = interpreter_for(arch)
        if found is None:
            report.missing.append(arch)
            continue
        interpreter, flags = found
        try:
            register(Registration(arch, interpreter, flags))
        except BinfmtError:
            report.missing.append(arch)
            continue
        report.registered.append(arch)
    return report
