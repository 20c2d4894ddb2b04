"""The FileOp backend: LLB file actions on directories."""
from pybuildkit.worker.ops.fileops.actions import (FileOpError, Owner, mkdir, mkfile, resolve_owner, rm,
                                                   run_file_actions, symlink)
from pybuildkit.worker.ops.fileops.copy import copy

__all__ = ["FileOpError", "Owner", "copy", "mkdir", "mkfile", "resolve_owner", "rm", "run_file_actions", "symlink"]
