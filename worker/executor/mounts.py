"""The mounts of a step's OCI spec, and the clean-up of the stub files the runtime creates.

The system mounts follow BuildKit's list (it drops containerd's /run tmpfs). A runtime creates
a missing mount point inside the rootfs; those empty stubs would otherwise end up in the
step's layer, so they are removed afterwards, restoring the parent directory's timestamps for
reproducible layers, as BuildKit does.
"""
from __future__ import annotations

import os
import posixpath
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.executor.types import Mount, MountKind

DEFAULT_SHM_SIZE = 64 * 1024 * 1024
EMULATOR_PATH = "/dev/.buildkit_qemu_emulator"
OciMount = dict[str, object]


def system_mounts(*, rootless: bool, own_netns: bool, insecure: bool, cgroupfs: bool,
                  shm_size: int | None) -> list[OciMount]:
    """/proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys and (when usable) /sys/fs/cgroup.

    sysfs can only be mounted by the owner of the network namespace; sharing the executor's
    network inside a user namespace, /sys is bound read-only instead, as runc's rootless spec
    does. devpts gets no gid=5 when rootless: group 5 may not be mapped there."""
    devpts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not rootless:
        devpts.append("gid=5")
    sys_ro = [] if insecure else ["ro"]
    mounts: list[OciMount] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size or DEFAULT_SHM_SIZE}"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    ]
    if rootless and not own_netns:
        mounts.append({"destination": "/sys", "type": "bind", "source": "/sys",
                       "options": ["rbind", "nosuid", "noexec", "nodev", *(["ro"] if not insecure else [])]})
    else:
        mounts.append({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                       "options": ["nosuid", "noexec", "nodev", *sys_ro]})
    if cgroupfs:
        mounts.append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": ["nosuid", "noexec", "nodev", "relatime", *sys_ro]})
    return mounts


def ro_bind(source: Path, dest: str) -> OciMount:
    return {"destination": dest, "type": "bind", "source": str(source),
            "options": ["nosuid", "noexec", "nodev", "rbind", "ro"]}


def request_mount(mount: Mount) -> OciMount:
    """One mount the step asked for, as an OCI mount."""
    dest = posixpath.normpath(posixpath.join("/", mount.dest))
    if mount.kind == MountKind.TMPFS:
        options = ["nosuid", "nodev", *(["ro"] if mount.readonly else []), *mount.options]
        return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}
    if mount.kind not in (MountKind.BIND, MountKind.FILE, MountKind.SOCKET):
        raise BuildError(f"unsupported mount type {mount.kind!r} for {dest}")
    if mount.source is None:
        raise BuildError(f"mount {dest} has no source")
    options = ["rbind", "ro" if mount.readonly else "rw"]
    if mount.kind == MountKind.FILE:
        options = ["rbind", "ro", "nosuid", "nodev", "noexec"]
    return {"destination": dest, "type": "bind", "source": str(mount.source), "options": [*options, *mount.options]}


def emulator_mount(emulator: Path) -> OciMount:
    return {"destination": EMULATOR_PATH, "type": "bind", "source": str(emulator), "options": ["rbind", "ro"]}


def dedup(mounts: Iterable[OciMount]) -> list[OciMount]:
    """A later mount on the same destination replaces an earlier one (the step's own mounts win
    over the defaults), keeping the later one's position so parents still come first."""
    ordered = list(mounts)
    last = {m["destination"]: i for i, m in enumerate(ordered)}
    return [m for i, m in enumerate(ordered) if last[m["destination"]] == i]


class StubLedger:
    """Who still needs each mount stub: steps running at once on the same root filesystem
    share the stubs the runtime created for the first of them.

    Without it one step removed "its" /etc/resolv.conf stub while the runtime of a concurrent
    step, which had found the stub and so did not record it as its own, was about to mount onto
    it: that step failed with "No such file or directory" and lost its output. Claiming and
    releasing happen under one lock, and a stub is removed only when its last user is done, so
    no step can find a stub that is about to disappear."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[Path, int] = {}

    def claim(self, rootfs: Path, destinations: Iterable[str]) -> MountStubs:
        """The stubs this step depends on: paths missing before it, or stubs of a live step."""
        with self._lock:
            claimed: list[Path] = []
            for dest in destinations:
                for path in self._stubs_for(rootfs, dest):
                    if path not in claimed:
                        claimed.append(path)
            for path in claimed:
                self._users[path] = self._users.get(path, 0) + 1
            return MountStubs(claimed, self)

    def _stubs_for(self, rootfs: Path, dest: str) -> list[Path]:
        parts = [p for p in posixpath.normpath(posixpath.join("/", dest)).split("/") if p]
        if not parts or ".." in parts:
            return []
        found: list[Path] = []
        current = rootfs
        for depth, part in enumerate(parts):
            current = current / part
            if current in self._users:
                found.append(current)  # a live step's stub: exists now, gone when both are done
                continue
            if os.path.islink(current):
                break  # resolved inside the rootfs by the runtime; never follow it from here
            if not os.path.lexists(current):
                found.extend(rootfs.joinpath(*parts[:end]) for end in range(depth + 1, len(parts) + 1))
                break
        return found

    def release(self, paths: list[Path]) -> None:
        """Drop this step's claims and remove the stubs nobody needs any more (still under the
        lock, so a step starting meanwhile either sees them claimed or sees them gone)."""
        with self._lock:
            unused: list[Path] = []
            for path in paths:
                users = self._users.get(path, 0) - 1
                if users > 0:
                    self._users[path] = users
                else:
                    self._users.pop(path, None)
                    unused.append(path)
            _remove_empty(unused)


def _remove_empty(paths: list[Path]) -> None:
    """Remove the stubs that are still empty, deepest first, keeping parents' timestamps."""
    for path in sorted(paths, key=lambda p: len(p.parts), reverse=True):
        try:
            st = os.lstat(path)
            parent = os.stat(path.parent)
        except OSError:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            if any(os.scandir(path)):
                continue
            remove = os.rmdir
        elif st.st_size != 0:
            continue
        else:
            remove = os.unlink
        try:
            remove(path)
            os.utime(path.parent, ns=(parent.st_atime_ns, parent.st_mtime_ns))
        except OSError:
            continue


STUBS = StubLedger()  # one per process: two executors may run steps on the same directory


@dataclass
class MountStubs:
    """Paths missing in the rootfs before the step, which the runtime may create as mount points."""

    paths: list[Path]
    ledger: StubLedger = field(default=STUBS, repr=False, compare=False)

    @classmethod
    def record(cls, rootfs: Path, destinations: Iterable[str]) -> MountStubs:
        return STUBS.claim(rootfs, destinations)

    def remove(self) -> None:
        """Give the stubs back; the last step using one removes it if it is still empty."""
        paths, self.paths = self.paths, []
        self.ledger.release(paths)
