"""Without systemd (this host: no systemd as PID 1, no system bus) the daemon says in one line
that there is no delegated cgroup, and builds as before."""
from __future__ import annotations

from pathlib import Path

import pytest

from pybuildkit.solver.llb import builder as llb
from tests.integration.daemon.conftest import Daemon

pytestmark = pytest.mark.integration


def test_no_systemd_means_one_log_line_and_working_builds(daemon: Daemon, ctl, base_image: str,
                                                           tmp_path: Path) -> None:
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs this host: the degrade path is not what happens here")
    state = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH).run(["/bin/sh", "-c", "echo ok > /r"]).root()
    ctl("build", "--output", f"type=local,dest={tmp_path / 'out'}", stdin=state.marshal().SerializeToString())
    assert (tmp_path / "out" / "r").read_text() == "ok\n"
    lines = [line for line in daemon.log().splitlines() if "cgroup:" in line and "executor" not in line]
    assert len(lines) == 1, daemon.log()
    assert lines[0].startswith("pybuildkitd: cgroup: no delegated cgroup (")
    assert lines[0].endswith("build steps run in the daemon's own cgroup")
