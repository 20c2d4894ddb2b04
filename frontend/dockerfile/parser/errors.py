"""The error every parse failure raises: upstream's message plus where in the file it happened."""
from __future__ import annotations

from pybuildkit.solver.errors import BuildError


class DockerfileParseError(BuildError):
    """A Dockerfile that cannot be turned into an AST. Lines are 1-based; 0 means "no line"."""

    def __init__(self, message: str, *, filename: str = "Dockerfile", start_line: int = 0, end_line: int = 0,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.filename = filename
        self.start_line = start_line
        self.end_line = max(end_line, start_line)

    def located(self, filename: str, start_line: int, end_line: int = 0) -> DockerfileParseError:
        """The same error with a location, unless it already has one (as upstream's WithLocation)."""
        if self.start_line:
            return self
        return DockerfileParseError(self.message, filename=filename, start_line=start_line, end_line=end_line,
                                    hint=self.hint)

    def location(self) -> tuple[int, int]:
        return self.start_line, self.end_line
