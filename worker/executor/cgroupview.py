"""The daemon's own view of the cgroup mounts, where crun needs one on a cgroup v1 hybrid host.

crun 1.8 refuses to run where /sys/fs/cgroup/unified is a cgroup2 mount with controllers
(see runtime.py). Hiding it in a mount namespace made for each crun call (unshare, sh and
mount run before crun) costs ~4 ms a step. A daemon whose steps get no cgroup of their own (no
delegation to manage, and crun could not use it on such a host anyway) hides the mount once,
in a mount namespace of its own, and every crun call is a plain exec. The host's mounts are
untouched; the daemon's step mounts live in its namespace and go with it.
"""
from __future__ import annotations

from pathlib import Path

from pybuildkit.worker.executor.runtime import UNIFIED_MOUNT, CgroupLayout, cgroup_layout
from pybuildkit.worker.snapshot.mount import MS_RDONLY, MountError, mount, private_mount_namespace


def hide_unified_hierarchy() -> str | None:
    """Hide /sys/fs/cgroup/unified from this process and its children on a hybrid host; a log
    line saying so, or None where there is nothing to hide or it cannot be done (the executor's
    probe then finds the per-call namespace, as before)."""
    if cgroup_layout() != CgroupLayout.HYBRID:
        return None
    try:
        private_mount_namespace()
    except MountError:
        return None  # not allowed (no CAP_SYS_ADMIN, or threads already run): nothing changed
    try:
        mount("none", Path(UNIFIED_MOUNT), "tmpfs", MS_RDONLY, "mode=755")
    except MountError as exc:
        return f"executor: {UNIFIED_MOUNT} stays visible ({exc.message}); crun calls each hide it"
    return (f"executor: {UNIFIED_MOUNT} hidden in the daemon's own mount namespace "
            "(cgroup v1 hybrid host, steps without cgroups of their own)")
