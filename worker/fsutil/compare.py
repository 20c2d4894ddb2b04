"""Whether two filesystem entries have the same metadata, the rule both the incremental sync of
local files and the tree diff of snapshots use (fsutil's: type, mode, owner, link target,
device numbers, and size plus mtime for everything else)."""
from __future__ import annotations

import os
import stat


def same_metadata(a: os.stat_result, b: os.stat_result, a_path: str, b_path: str) -> bool:
    if (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid):
        return False
    if stat.S_ISLNK(a.st_mode):
        return os.readlink(a_path) == os.readlink(b_path)
    if stat.S_ISDIR(a.st_mode):
        return True
    if stat.S_ISCHR(a.st_mode) or stat.S_ISBLK(a.st_mode):
        return a.st_rdev == b.st_rdev
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns
