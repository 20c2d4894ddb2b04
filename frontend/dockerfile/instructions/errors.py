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
        self.source: bytes | None = None  # the Dockerfile, for showing the lines around the error

    def excerpt(self) -> str:
        """`Dockerfile:N` and the numbered lines around it, as buildctl prints them."""
        if not self.start_line:
            return ""
        lines = [f"{self.filename}:{self.start_line}" + (f"-{self.end_line}" if self.end_line != self.start_line else "")]
        if self.source is not None:
            text = self.source.decode("utf-8", "replace").split("\n")
            first, last = max(1, self.start_line - 2), min(len(text), self.end_line + 2)
            lines.append("-" * 20)
            for number in range(first, last + 1):
                marker = ">>>" if self.start_line <= number <= self.end_line else "   "
                lines.append(f" {number:>3} | {marker} {text[number - 1]}")
            lines.append("-" * 20)
        return "\n".join(lines)

    def located(self, filename: str, start: int, end: int) -> "DockerfileError":
        if not self.start_line:
            self.filename, self.start_line, self.end_line = filename, start, end or start
        return self


def _distance(a: str, b: str) -> int:
    """Edit distance counting an adjacent transposition as one edit (bulid -> build)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def did_you_mean(value: str, options: Iterable[str], *, case_insensitive: bool = True) -> str:
    """Upstream's suggestion: the closest option within a small edit distance, or ''."""
    best, best_score = "", None
    needle = value.lower() if case_insensitive else value
    for option in options:
        candidate = option.lower() if case_insensitive else option
        threshold = 2 if len(candidate) > 3 else 1
        if abs(len(needle) - len(candidate)) > threshold:
            continue  # cannot be within reach; and _distance is quadratic in a hostile value
        score = _distance(needle, candidate)
        if score <= threshold and (best_score is None or score < best_score):
            best, best_score = option, score
    return best


def with_suggestion(message: str, value: str, options: Iterable[str]) -> str:
    suggestion = did_you_mean(value, options)
    return f"{message} (did you mean {suggestion}?)" if suggestion else message
