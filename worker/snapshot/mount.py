"""mount(2)/umount(2) through libc, so a step does not pay for a `mount` process each time."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.process import run

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
CLONE_NEWNS = 0x00020000
_MAX_OPTIONS = 3800  # the kernel copies at most one page of mount data


class MountError(BuildError):
    pass


def mount(source: str, target: Path, fstype: str | None, flags: int = 0, data: str = "") -> None:
    if fstype == "overlay" and len(data) > _MAX_OPTIONS:
        _mount_long_overlay(target, data)
        return
    rc = _libc.mount(source.encode(), str(target).encode(),
                     fstype.encode() if fstype else None, flags, data.encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise MountError(f"mount {fstype or 'bind'} on {target}: {os.strerror(err)}")


def _mount_long_overlay(target: Path, data: str) -> None:
    """Overlay options past one page: run mount(8) from the layers folder with relative names."""
    options = dict(item.split("=", 1) for item in data.split(",") if "=" in item)
    flags = [item for item in data.split(",") if "=" not in item]
    lowers = options["lowerdir"].split(":")
    base = os.path.commonpath(lowers)
    options["lowerdir"] = ":".join(os.path.relpath(p, base) for p in lowers)
    opt = ",".join([f"{k}={v}" for k, v in options.items()] + flags)
    run(["mount", "-t", "overlay", "overlay", "-o", opt, str(target)], cwd=base)


def bind(source: Path, target: Path, *, readonly: bool = False, recursive: bool = True) -> None:
    mount(str(source), target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | (MS_REC if recursive else 0))


def private_mount_namespace() -> None:
    """Move this process into a mount namespace of its own, a copy of the current one whose
    mounts propagate nowhere. The kernel allows it only while the process has one thread."""
    if _libc.unshare(CLONE_NEWNS) != 0:
        raise MountError(f"unshare(CLONE_NEWNS): {os.strerror(ctypes.get_errno())}")
    mount("none", Path("/"), None, MS_REC | MS_PRIVATE)


def umount(target: Path, *, lazy: bool = False) -> None:
    rc = _libc.umount2(str(target).encode(), MNT_DETACH if lazy else 0)
    if rc != 0:
        err = ctypes.get_errno()
        if err == 22:  # EINVAL: not a mount point any more
            return
        if not lazy and err == 16:  # EBUSY: a process still holds it; detach instead
            umount(target, lazy=True)
            return
        raise MountError(f"umount {target}: {os.strerror(err)}")


def overlay_options(lowers: list[Path], upper: Path | None, work: Path | None, *, userxattr: bool) -> str:
    parts = ["lowerdir=" + ":".join(str(p) for p in lowers)]
    if upper is not None and work is not None:
        parts += [f"upperdir={upper}", f"workdir={work}"]
    if userxattr:
        parts.append("userxattr")
    return ",".join(parts)
