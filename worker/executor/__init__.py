"""Running build steps in containers with crun or runc."""
from pybuildkit.worker.executor.runner import Executor, ExecutorError, in_user_namespace
from pybuildkit.worker.executor.types import ExecRequest, Mount, NetMode, RuntimeInfo, SecurityMode

__all__ = ["ExecRequest", "Executor", "ExecutorError", "Mount", "NetMode", "RuntimeInfo", "SecurityMode",
           "in_user_namespace"]
