"""The engine solves real graphs in real containers, concurrently, and caches across processes."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from .conftest import llb_definition


def _ts(text: str) -> float:
    head, _, frac = text.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(head).replace(tzinfo=dt.timezone.utc).timestamp() + float("0." + (frac or "0"))


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_independent_branches_run_concurrently_and_merge(pybuildctl, base_image, tmp_path) -> None:
    definition = llb_definition("multiarch_llb.py", "--image", base_image, "--nonce", "concurrency",
                                "--branches", "4")
    out = tmp_path / "out"
    run = pybuildctl(["--output", f"type=local,dest={out}"], stdin=definition)
    branches = [v for v in run.vertices().values() if v["name"].startswith("branch ")]
    assert len(branches) == 4
    intervals = [(_ts(v["started"]), _ts(v["completed"])) for v in branches]
    latest_start = max(start for start, _ in intervals)
    earliest_end = min(end for _, end in intervals)
    assert latest_start < earliest_end, f"branches did not overlap: {intervals}"
    assert sorted(p.name for p in out.iterdir()) == [f"branch-{i}.txt" for i in range(4)]


def test_second_solve_in_new_process_executes_nothing(pybuildctl, base_image, tmp_path) -> None:
    definition = llb_definition("multiarch_llb.py", "--image", base_image, "--nonce", "second-solve")
    first, second = tmp_path / "first", tmp_path / "second"
    pybuildctl(["--output", f"type=local,dest={first}"], stdin=definition)
    again = pybuildctl(["--output", f"type=local,dest={second}"], stdin=definition)
    execs = [v for v in again.vertices().values() if v["name"].startswith("branch ")]
    assert execs and all(v.get("cached") for v in execs)
    assert _tree(first) == _tree(second)


def test_failing_step_reports_buildkit_message(pybuildctl, base_image, tmp_path) -> None:
    from pybuildkit.solver.llb import builder as llb

    state = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH)
    failing = state.run(["/bin/sh", "-c", "echo about-to-fail; exit 3"]).root()
    run = pybuildctl([], stdin=failing.marshal().SerializeToString(), check=False)
    assert run.returncode == 1
    assert 'process "/bin/sh -c echo about-to-fail; exit 3" did not complete successfully: exit code: 3' in run.stderr
    assert "about-to-fail" in run.stderr
    assert "Traceback" not in run.stderr
