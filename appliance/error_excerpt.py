"""The `Dockerfile:N` excerpt of a failed step: BuildKit prints the source lines an op came from
(the LLB definition's source map) between the progress output and `error: failed to solve:`."""
from __future__ import annotations

from collections.abc import Sequence

from pybuildkit.solver.errors import SolveError
from pybuildkit.solver.pb import ops_pb2 as pb


def source_excerpt(definitions: Sequence[pb.Definition], vertex: str | None) -> str:
    """The numbered lines around the instruction that made `vertex`, or '' when no definition
    maps it to a source file (LLB from stdin without locations, internal vertices)."""
    from pybuildkit.frontend.dockerfile.instructions.errors import DockerfileError

    if not vertex:
        return ""
    for definition in definitions:
        source = definition.Source
        if vertex not in source.locations:
            continue
        for location in source.locations[vertex].locations:
            if not location.ranges or location.sourceIndex >= len(source.infos):
                continue
            info = source.infos[location.sourceIndex]
            first = min(r.start.line for r in location.ranges)
            last = max(r.end.line or r.start.line for r in location.ranges)
            located = DockerfileError("", filename=info.filename or "Dockerfile", start_line=first, end_line=last)
            located.source = info.data or None
            return located.excerpt()
    return ""


class LocatedSolveError(SolveError):
    """A step's failure with the source lines it came from (`excerpt()`), keeping the failed
    step's last output lines (`output_tail`) for clients that show them."""

    def __init__(self, original: SolveError, text: str) -> None:
        super().__init__(original.message, vertex=original.vertex, hint=original.hint)
        self._excerpt = text
        cause = original.__cause__
        self.output_tail = list(getattr(original, "output_tail", None) or getattr(cause, "output_tail", None) or ())

    def excerpt(self) -> str:
        return self._excerpt


def with_excerpt(exc: SolveError, definitions: Sequence[pb.Definition]) -> SolveError:
    """`exc`, or a LocatedSolveError carrying the `Dockerfile:N` lines of the failed step."""
    if callable(getattr(exc, "excerpt", None)):
        return exc
    text = source_excerpt(definitions, exc.vertex)
    return LocatedSolveError(exc, text) if text else exc
