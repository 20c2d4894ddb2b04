"""Running build steps in containers with crun or runc (see runner.Executor)."""
from pybuildkit.binfmt.emulator import EmulatorPolicy
from pybuildkit.worker.executor.runner import Executor
from pybuildkit.worker.executor.runtime import ExecutorError, in_user_namespace
from pybuildkit.worker.executor.types import (
           ExecRequest,
           Mount,
           MountKind,
           NetMode,
           RuntimeInfo,
           SecurityMode,
)

__all__ = ["EmulatorPolicy", "ExecRequest", "Executor", "ExecutorError", "Mount", "MountKind", "NetMode",
           "RuntimeInfo", "SecurityMode", "in_user_namespace"]
