"""Shell-word expansion for Dockerfile instructions (upstream's frontend/dockerfile/shell)."""
from pybuildkit.frontend.dockerfile.shell.lex import Lex, ProcessWordResult, ShellError, env_from_list

__all__ = ["Lex", "ProcessWordResult", "ShellError", "env_from_list"]
