"""Upstream's Dockerfile integration cases, built for real with their assertions.

Cases marked expected-to-fail carry the reason in XFAIL below; the module prints
"dockerfile2llb conformance: N passed, M failed".
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.daemon import Daemon, start_daemon

from .conftest import record_summary, require_data
from .dockerfile2llb_runner import (RunOutcome, check_errors, check_files, check_image_config, convert_only,
                                    prepare_context, run_build, substitute_registry)

DATA = require_data("dockerfile2llb")
CASES = sorted(p.parent.name for p in DATA.glob("*/case.json"))
XFAIL: dict[str, str] = {}
RESULTS: dict[tuple[str, str], RunOutcome] = {}


def run_case(name: str, work: Path, registry_host: str, builder_config: Path, mode: str) -> RunOutcome:
    """Every build of a case goes to the same builder state, as upstream runs them against one
    daemon: in "daemon" mode one pybuildkitd serves them all, in "daemonless" mode each build
    starts its own on the case's root."""
    case_dir = DATA / name
    case = json.loads((case_dir / "case.json").read_text())
    problems: list[str] = []
    saved: dict = {}
    root = work / "state"
    daemon: Daemon | None = None
    try:
        for index, run in enumerate(case["runs"]):
            opts, expect = run.get("opts", {}), run.get("expect", {})
            run_dir = work / f"run{index}"
            run_dir.mkdir(parents=True, exist_ok=True)
            ctx = prepare_context(case_dir, case, run, run_dir)
            substitute_registry(ctx, registry_host)
            out = run_dir / "out"
            if opts.get("level") in ("dockerfile2llb", "instructions.ParseInstruction"):
                ok, stderr, config = convert_only(ctx, opts)
            else:
                if mode == "daemon" and daemon is None:
                    rundir = work / "daemon-run"
                    rundir.mkdir()
                    daemon = start_daemon(root, builder_config, rundir)
                ok, stderr, config = run_build(ctx, opts, root=root, config=builder_config, out=out,
                                               registry_host=registry_host, work=run_dir,
                                               address=daemon.address if daemon else None)
            run_problems: list[str] = []
            check_errors(ok, stderr, expect, run_problems)
            if ok and expect.get("files"):
                check_files(out, ctx, expect["files"], saved, run_problems)
            if ok and expect.get("image_config"):
                check_image_config(config, expect["image_config"], run_problems)
            problems += [f"run {index}: {p}" for p in run_problems]
    finally:
        if daemon is not None:
            daemon.stop()
    return RunOutcome(not problems, problems)


@pytest.mark.parametrize("mode", ["daemon", "daemonless"])
@pytest.mark.parametrize("name", CASES)
def test_case(name: str, mode: str, tmp_path: Path, registry_host: str, builder_config: Path) -> None:
    outcome = run_case(name, tmp_path, registry_host, builder_config, mode)
    RESULTS[(name, mode)] = outcome
    mine = [o for (_, m), o in RESULTS.items() if m == mode]
    record_summary(f"dockerfile2llb ({mode})", sum(1 for o in mine if o.ok), sum(1 for o in mine if not o.ok))
    if name in XFAIL and not outcome.ok:
        pytest.xfail(XFAIL[name])
    assert outcome.ok, "\n".join(outcome.problems)
