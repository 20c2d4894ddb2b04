"""Choosing the OCI runtime: crun when it works here, else runc, with the reason logged.

crun starts a container in about 10 ms and runc in about 15, so crun is preferred. On a cgroup
v1 "hybrid" host (a cgroup2 mount at /sys/fs/cgroup/unified with controllers) crun 1.8 refuses
to run at all; hiding that mount in a private mount namespace made just for the crun call fixes
it without touching the host. Whether that is needed is found out by trying, never assumed.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pybuildkit.solver.errors import BuildError
from pybuildkit.worker import process
from pybuildkit.worker.executor.spec import cgroups_path
from pybuildkit.worker.executor.types import RuntimeInfo

RUNTIMES = ("crun", "runc")
UNIFIED_MOUNT = "/sys/fs/cgroup/unified"
_HIDE_UNIFIED = f'mount -t tmpfs -o ro,mode=755 none {UNIFIED_MOUNT} && exec "$0" "$@"'


class ExecutorError(BuildError):
    """The executor itself (not the step) failed: no runtime, a runtime crash, a bad spec."""


class CgroupLayout(StrEnum):
    UNIFIED = "unified"  # cgroup v2 only
    HYBRID = "hybrid"  # v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified
    LEGACY = "legacy"  # v1 only
    NONE = "none"


def in_user_namespace() -> bool:
    """True when uid 0 here is not the host's root (rootlesskit, unshare --user)."""
    try:
        fields = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    return fields[:3] != ["0", "0", "4294967295"]


def cgroup_layout(mountinfo: Path = Path("/proc/self/mountinfo")) -> CgroupLayout:
    fstypes: dict[str, str] = {}
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return CgroupLayout.NONE
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split()
        if len(fields) >= 5 and after:
            fstypes[fields[4]] = after.split()[0]
    top = fstypes.get("/sys/fs/cgroup")
    if top == "cgroup2":
        return CgroupLayout.UNIFIED
    if top is None:
        return CgroupLayout.NONE
    return CgroupLayout.HYBRID if fstypes.get(UNIFIED_MOUNT) == "cgroup2" else CgroupLayout.LEGACY


@dataclass(frozen=True)
class Runtime:
    """A probed runtime and how to invoke it: flags and, where needed, the mount-namespace wrap."""

    info: RuntimeInfo
    root: Path  # the runtime's --root: its state for our containers only
    wrapper: tuple[str, ...] = ()  # prefix that hides /sys/fs/cgroup/unified (crun on hybrid hosts)
    manages_cgroups: bool = True  # False: crun --cgroup-manager=disabled, spec without cgroupsPath
    cgroup_parent: str | None = None  # proven able to create the steps' cgroups under this one

    def argv(self, command: str, *rest: str) -> list[str]:
        argv = [*self.wrapper, self.info.path, "--root", str(self.root)]
        if self.info.name == "crun" and not self.manages_cgroups:
            argv.append("--cgroup-manager=disabled")
        elif self.info.name == "crun" and self.cgroup_parent:
            argv.append("--cgroup-manager=cgroupfs")  # the parent is a cgroupfs path, never a slice
        argv.append(command)
        if command == "run":
            argv.append("--no-new-keyring")  # harmless, and systemd-nspawn's seccomp filter needs it
        return [*argv, *rest]


def probe_runtime(root: Path, scratch: Path, *, wanted: str | None, rootless: bool,
                  log: Callable[[str], None], cgroup_parent: str | None = None) -> Runtime:
    """Try crun, then runc (or only `wanted`), by running a real container; return the first
    that works, logging why any candidate was passed over. With a `cgroup_parent` (the daemon's
    delegated cgroup) each runtime is first tried creating the probe's own cgroup under it: one
    that can gives every step a cgroup there, one that cannot (crun on a cgroup v1 hybrid host,
    runc rootless there) is used as before and the reason is logged."""
    layout = cgroup_layout()
    notes: list[str] = []
    for name in ([wanted] if wanted else list(RUNTIMES)):
        path = shutil.which(name) if "/" not in name else name
        if path is None or not os.access(path, os.X_OK):
            notes.append(f"{name}: not installed")
            continue
        kind = "crun" if os.path.basename(path).startswith("crun") else "runc"
        version = _version(path)
        attempts = _attempts(kind, path, version, root, layout, rootless, cgroup_parent)
        problems: list[str] = []
        for runtime, note in attempts:
            problem = _try(runtime, scratch)
            if problem is not None and runtime.cgroup_parent:
                notes.append(f"{kind} cannot create step cgroups under {runtime.cgroup_parent} ({problem})")
                continue
            if problem is None:
                info = RuntimeInfo(kind, path, version, rootless, tuple(notes + ([note] if note else [])))
                runtime = dataclasses.replace(runtime, info=info)
                log(f"executor: using {kind} ({version or path})"
                    + (f"; {'; '.join(info.notes)}" if info.notes else ""))
                return runtime
            problems.append(problem)
        reason = problems[-1] if problems else "unusable"
        notes.append(f"{kind}: {reason}")
        log(f"executor: {kind} cannot run steps here ({reason}); trying the next runtime")
    raise ExecutorError("no usable OCI runtime: " + "; ".join(notes),
                        hint="install crun or runc (apt-get install crun runc)")


def _attempts(kind: str, path: str, version: str, root: Path, layout: CgroupLayout,
              rootless: bool, cgroup_parent: str | None = None) -> list[tuple[Runtime, str]]:
    info = RuntimeInfo(kind, path, version, rootless)
    attempts: list[tuple[Runtime, str]] = []
    if cgroup_parent and layout != CgroupLayout.NONE:
        attempts.append((Runtime(info, root, manages_cgroups=True, cgroup_parent=cgroup_parent),
                         f"every step gets its own cgroup under {cgroup_parent}"))
    if kind == "runc":
        return [*attempts, (Runtime(info, root, manages_cgroups=not rootless and layout != CgroupLayout.NONE), "")]
    attempts.append((Runtime(info, root, manages_cgroups=False), ""))
    if layout == CgroupLayout.HYBRID:
        wrapper = _hiding_wrapper()
        if wrapper:
            attempts.append((Runtime(info, root, wrapper, manages_cgroups=False),
                             (f"crun runs in a private mount namespace with {UNIFIED_MOUNT} hidden "
                              "(cgroup v1 hybrid host)")))
    return attempts


def _hiding_wrapper() -> tuple[str, ...]:
    tools = [shutil.which(t) for t in ("unshare", "sh", "mount")]
    if not all(tools):
        return ()
    unshare, sh, mount = tools
    assert unshare and sh and mount
    return (unshare, "--mount", "--propagation", "private", "--", sh, "-c",
            _HIDE_UNIFIED.replace("mount -t", f"{mount} -t", 1))


def _version(path: str) -> str:
    try:
        out = process.run([path, "--version"], check=False, timeout=10).stdout.decode(errors="replace")
    except (BuildError, subprocess.TimeoutExpired):
        return ""
    first = out.splitlines()[0] if out else ""
    return first.split("version", 1)[-1].strip() if "version" in first else first


def _try(runtime: Runtime, scratch: Path) -> str | None:
    """Run a do-nothing static binary in a minimal container (in its own cgroup under the
    runtime's `cgroup_parent`, when set); None means the runtime works."""
    scratch.mkdir(parents=True, exist_ok=True)
    bundle = Path(tempfile.mkdtemp(prefix="probe-", dir=scratch))
    container = bundle.name  # "probe-...": never mistaken for a step's "pbk-..." container
    try:
        rootfs = bundle / "rootfs"
        for sub in ("proc", "dev"):
            (rootfs / sub).mkdir(parents=True)
        binary = exit_zero_elf()
        if binary is None:
            return None  # no probe binary for this CPU: trust the runtime, failures show per step
        target = rootfs / "probe"
        target.write_bytes(binary)
        target.chmod(0o755)
        spec = {"ociVersion": "1.0.2",
                "process": {"args": ["/probe"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": [],
                            "terminal": False},
                "root": {"path": str(rootfs), "readonly": False},
                "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
                "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts")]}}
        if runtime.cgroup_parent:
            spec["linux"]["cgroupsPath"] = cgroups_path(runtime.cgroup_parent, container)  # type: ignore[index]
        (bundle / "config.json").write_text(json.dumps(spec))
        result = process.run(runtime.argv("run", "--bundle", str(bundle), container), check=False, timeout=30)
        if result.returncode != 0:
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else f"exit code {result.returncode}"
        return None
    except subprocess.TimeoutExpired:
        return "timed out starting a container"
    finally:
        if (runtime.root / container).exists():
            process.run(runtime.argv("delete", "-f", container), check=False, timeout=30)
        shutil.rmtree(bundle, ignore_errors=True)


_EXIT_ZERO_CODE = {
    # machine: (e_machine, code for exit(0))
    "x86_64": (62, bytes.fromhex("31ff" "b83c000000" "0f05")),  # xor edi,edi; mov eax,60; syscall
    "aarch64": (183, bytes.fromhex("000080d2" "a80b80d2" "010000d4")),  # mov x0,0; mov x8,93; svc 0
}


def exit_zero_elf(machine: str | None = None) -> bytes | None:
    """A minimal static little-endian ELF64 executable that exits 0, for the host's CPU.

    Built rather than copied from the host so the probe works on hosts without busybox."""
    entry = _EXIT_ZERO_CODE.get(machine or os.uname().machine)
    if entry is None:
        return None
    e_machine, code = entry
    base, header_size, phdr_size = 0x400000, 64, 56
    size = header_size + phdr_size + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = struct.pack("<16sHHIQQQIHHHHHH", ident, 2, e_machine, 1, base + header_size + phdr_size,
                         header_size, 0, 0, header_size, phdr_size, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)
    return header + phdr + code
