"""Progress output in buildctl's formats."""
from __future__ import annotations

import io
import json

from pybuildkit.appliance.progressui import PlainPrinter, RawJSONPrinter, rfc3339nano
from pybuildkit.solver.progress import LogEvent, SolveStatus, StatusEvent, VertexEvent


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


def test_plain_prints_canceled_for_a_cancelled_step() -> None:
    """plain: a step stopped by cancellation ends with `#N CANCELED`, not an error."""
    out = io.StringIO()
    printer = PlainPrinter(out)
    printer.update(SolveStatus(vertexes=[VertexEvent("d1", "[1/1] RUN sleep 9", started=0)]))
    printer.update(SolveStatus(vertexes=[VertexEvent("d1", "[1/1] RUN sleep 9", started=0, completed=1,
                                                     error="context canceled")]))
    printer.finish()
    assert out.getvalue().splitlines() == ["#1 [1/1] RUN sleep 9", "#1 CANCELED", ""]


def test_plain_numbers_steps_in_order_of_first_appearance() -> None:
    """A vertex known early but started late gets its number when it first shows up."""
    out = io.StringIO()
    printer = PlainPrinter(out)
    printer.update(SolveStatus(vertexes=[VertexEvent("late", "[2/2] RUN b"), VertexEvent("early", "[1/2] FROM a")]))
    printer.update(SolveStatus(vertexes=[VertexEvent("early", "[1/2] FROM a", started=0, completed=0)]))
    printer.update(SolveStatus(vertexes=[VertexEvent("late", "[2/2] RUN b", started=0, completed=0)]))
    assert [line for line in out.getvalue().splitlines() if line.endswith(("FROM a", "RUN b"))] == [
        "#1 [1/2] FROM a", "#2 [2/2] RUN b"]


def test_failed_step_excerpt_shows_its_name_and_last_output_lines() -> None:
    """BuildKit closes a failed build with ` > [stage 2/2] RUN ...:` and the step's last lines."""
    out = io.StringIO()
    printer = PlainPrinter(out)
    printer.update(SolveStatus(vertexes=[VertexEvent("d", "[stage-0 2/2] RUN make", started=0)]))
    printer.update(SolveStatus(logs=[LogEvent("d", 1, b"".join(b"line %d\n" % i for i in range(15)), 0)]))
    printer.update(SolveStatus(vertexes=[VertexEvent("d", "[stage-0 2/2] RUN make", started=0, completed=1,
                                                     error="exit code: 2")]))
    printer.finish()
    excerpt = out.getvalue().split("\n\n")[-1].splitlines()
    assert excerpt == ["------", " > [stage-0 2/2] RUN make:", *[f"0.000 line {i}" for i in range(5, 15)], "------"]


def test_plain_sub_steps_show_bytes_like_go_units() -> None:
    out = io.StringIO()
    printer = PlainPrinter(out)
    printer.update(SolveStatus(vertexes=[VertexEvent("d", "[internal] load build context", started=0)]))
    printer.update(SolveStatus(statuses=[StatusEvent("ctx", "d", "transferring context:", current=2_190_000,
                                                     started=0, completed=0),
                                         StatusEvent("sha256:aa", "d", "sha256:aa", current=1_040_000,
                                                     total=40_100_000, started=0, completed=0)]))
    assert out.getvalue().splitlines()[1:] == ["#1 transferring context: 2.19MB done",
                                               "#1 sha256:aa 1.04MB / 40.1MB done"]
