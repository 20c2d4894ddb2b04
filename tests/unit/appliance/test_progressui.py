"""Progress output in buildctl's formats."""
from __future__ import annotations

import io
import json

from pybuildkit.appliance.progressui import PlainPrinter, RawJSONPrinter, rfc3339nano
from pybuildkit.solver.progress import LogEvent, SolveStatus, VertexEvent


def test_rfc3339nano_trims_trailing_zeros_like_go() -> None:
    assert rfc3339nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_rawjson_has_one_solve_status_per_line_with_go_escaping() -> None:
    out = io.StringIO()
    printer = RawJSONPrinter(out)
    printer.update(SolveStatus(vertexes=[VertexEvent("sha256:a", "RUN a && b", started=1_000_000_000)]))
    printer.update(SolveStatus(logs=[LogEvent("sha256:a", 1, b"hi\n", 2_000_000_000)]))
    first, second = out.getvalue().splitlines()
    assert "\\u0026\\u0026" in first
    assert json.loads(first)["vertexes"][0]["name"] == "RUN a && b"
    assert json.loads(second)["logs"][0] == {"vertex": "sha256:a", "stream": 1, "data": "aGkK",
                                             "timestamp": "1970-01-01T00:00:02Z"}


def test_plain_numbers_vertices_and_reports_done_cached_and_errors() -> None:
    out = io.StringIO()
    printer = PlainPrinter(out)
    printer.update(SolveStatus(vertexes=[VertexEvent("d1", "[1/2] FROM base", started=0, completed=0, cached=True)]))
    printer.update(SolveStatus(vertexes=[VertexEvent("d2", "[2/2] RUN false", started=0)]))
    printer.update(SolveStatus(logs=[LogEvent("d2", 2, b"boom\n", 0)]))
    printer.update(SolveStatus(vertexes=[VertexEvent("d2", "[2/2] RUN false", started=0, completed=10**8,
                                                     error="exit code: 1")]))
    assert out.getvalue().splitlines() == [
        "#1 [1/2] FROM base", "#1 CACHED", "",
        "#2 [2/2] RUN false", "#2 0.000 boom", "#2 ERROR: exit code: 1", ""]
