"""Start-up recovery: reap what a killed predecessor left on the worker's root.

A SIGKILLed daemon (OOM killer, reboot, impatient admin) cannot clean up: `runc run` dies but the
container it started keeps running, its overlay rootfs stays mounted, and bundles, scratch
directories, temporary layers and ingest files stay on disk. The next worker on the same root
runs this before anything else touches the stores. It assumes it owns the root exclusively (the
caller holds the root lock), so everything transient under it belongs to a dead process.

Order matters: containers first (they pin mounts), then mounts, deepest first (so removing a
directory can never recurse into a mounted filesystem), then files.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker.executor.runtime import RUNTIMES
from pybuildkit.worker.snapshot import mount as m


@dataclass
class RecoveryReport:
    containers: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    bundles: list[str] = field(default_factory=list)
    runtime_state: list[str] = field(default_factory=list)
    scratch: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.containers or self.mounts or self.bundles or self.runtime_state or self.scratch)

    def summary(self) -> str:
        parts = [f"{len(items)} {name}" for name, items in (
            ("containers", self.containers), ("mounts", self.mounts), ("bundles", self.bundles),
            ("runtime state dirs", self.runtime_state), ("scratch dirs", self.scratch)) if items]
        return ", ".join(parts) if parts else "nothing"


def _decode_mountinfo_path(text: str) -> str:
    """mountinfo escapes blanks, tabs, newlines and backslashes as octal (`\\040`)."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 3 < len(text) and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def mounts_under(root: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """Mount points strictly inside `root`, deepest first."""
    base = os.path.realpath(root)
    found: list[Path] = []
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = _decode_mountinfo_path(fields[4])
        if point != base and point.startswith(base + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: (-len(p.parts), str(p)))


def unmount_under(root: Path) -> list[str]:
    """Detach every mount inside `root`; returns the mount points detached."""
    detached = []
    for point in mounts_under(root):
        with contextlib.suppress(BuildError):
            m.umount(point, lazy=True)
            detached.append(str(point))
    return detached


def _runtime(binary: str, state_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [binary, "--root", str(state_root)]
    if os.path.basename(binary) == "crun":
        argv.append("--cgroup-manager=disabled")
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60, check=False)


def _holds_containers(state_root: Path) -> bool:
    """Whether a runtime state root has a container's directory: runc and crun keep one per
    container there, so one without any has nothing to list."""
    try:
        with os.scandir(state_root) as entries:
            return any(entry.is_dir(follow_symlinks=False) for entry in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False


def reap_containers(state_roots: Iterable[Path]) -> list[str]:
    """Kill and delete every container in the runtimes' state roots, for runc and crun alike."""
    reaped: list[str] = []
    for state_root in state_roots:
        if not _holds_containers(state_root):
            continue  # the usual start after a clean stop: no runtime to exec (runc's is ~40 ms)
        for name in RUNTIMES:
            binary = shutil.which(name)
            if binary is None:
                continue
            listing = _runtime(binary, state_root, "list", "-q")
            if listing.returncode != 0:
                continue  # the other runtime's state format; it gets its turn
            for container in listing.stdout.split():
                _runtime(binary, state_root, "kill", container, "KILL")
                deleted = _runtime(binary, state_root, "delete", "-f", container)
                if deleted.returncode == 0 or not (state_root / container).exists():
                    reaped.append(container)
    return reaped


def _clear(directory: Path, keep: Iterable[str] = ()) -> list[str]:
    removed: list[str] = []
    if not directory.is_dir():
        return removed
    kept = set(keep)
    for entry in directory.iterdir():
        if entry.name in kept:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry.name)
    return removed


def recover(root: Path, *, runtime_roots: Iterable[Path], bundles: Iterable[Path],
            scratch: Iterable[Path]) -> RecoveryReport:
    """Reap containers, mounts, bundles, stale runtime state and scratch directories under `root`.

    Temporary layers, ingest files and dangling records are the stores' own business (their
    `check()`); the worker runs those right after this."""
    report = RecoveryReport()
    roots = list(runtime_roots)
    report.containers = reap_containers(roots)
    report.mounts = unmount_under(root)
    for directory in bundles:
        report.bundles += _clear(directory)
    for state_root in roots:  # what the runtimes could not list: half-written state
        report.runtime_state += _clear(state_root)
    for directory in scratch:
        report.scratch += _clear(directory)
    return report
