"""The FileOp backend: LLB file actions (mkdir, mkfile, rm, symlink, copy) on directories, with
BuildKit's semantics (its solver/llbsolver/file backend and fsutil's copy)."""
from pybuildkit.worker.ops.fileops.actions import mkdir, mkfile, rm, symlink
from pybuildkit.worker.ops.fileops.chain import run_file_actions
from pybuildkit.worker.ops.fileops.copy import clone_tree, copy
from pybuildkit.worker.ops.fileops.errors import FileOpError
from pybuildkit.worker.ops.fileops.owner import Owner, resolve_owner

__all__ = ["FileOpError", "Owner", "clone_tree", "copy", "mkdir", "mkfile", "resolve_owner", "rm", "run_file_actions", "symlink"]
