"""Typed errors every layer raises; each carries what the user must fix.

They live in the solver package because it is the one package every other layer may import.
"""
from __future__ import annotations


class BuildError(Exception):
    """A build failed for a reason the user can act on. `hint` says what to do next."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class InvalidDefinitionError(BuildError):
    """The LLB Definition is malformed (missing input, cycle, unknown op...)."""


class SolveError(BuildError):
    """A vertex failed while solving; `vertex` is its digest when known."""

    def __init__(self, message: str, *, vertex: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.vertex = vertex


class CancelledError(BuildError):
    """The solve was cancelled by the client."""


class ConfigError(BuildError):
    """Configuration file or option is invalid (names the file and key)."""


class EntitlementError(BuildError):
    """The build asked for an entitlement the builder or client did not grant."""
