"""Dockerfile errors with upstream's wording and "did you mean" hints."""
from __future__ import annotations

from collections.abc import Iterable

from pybuildkit.solver.errors import BuildError


class DockerfileError(BuildError):
    """An error tied to a place in the Dockerfile; str() is upstream's message."""

    def __init__(self, message: str, *, filename: str = "Dockerfile", start_line: int = 0,
                 end_line: int = 0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.filename = filename
        self.start_line = start_line
        self.end_line = end_line or start_line

    def located(self, filename: str, start: int, end: int) -> "DockerfileError":
        if not self.start_line:
            self.filename, self.start_line, self.end_line = filename, start, end or start
        return self


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def did_you_mean(value: str, options: Iterable[str], *, case_insensitive: bool = True) -> str:
    """Upstream's suggestion: the closest option within a small edit distance, or ''."""
    best, best_score = "", None
    needle = value.lower() if case_insensitive else value
    for option in options:
        candidate = option.lower() if case_insensitive else option
        score = _distance(needle, candidate)
        threshold = max(1, len(candidate) // 3 if len(candidate) > 3 else 1)
        if score <= threshold and (best_score is None or score < best_score):
            best, best_score = option, score
    return best


def with_suggestion(message: str, value: str, options: Iterable[str]) -> str:
    suggestion = did_you_mean(value, options)
    return f"{message} (did you mean {suggestion}?)" if suggestion else message
