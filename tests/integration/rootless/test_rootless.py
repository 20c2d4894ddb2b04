"""The same engine as mapped root inside rootlesskit's user namespace, as an unprivileged user."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pybuildkit.solver.llb import builder as llb

USER = "pbk-test"


@pytest.fixture(scope="module")
def rootless_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("creating the test user needs root")
    if shutil.which("rootlesskit") is None:
        pytest.skip("rootlesskit is not installed")
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", USER], check=True)  # also writes its /etc/subuid range
        return pwd.getpwnam(USER)


def test_build_as_unprivileged_user_under_rootlesskit(rootless_user, base_image, builder_config, tmp_path) -> None:
    home = Path(rootless_user.pw_dir)
    work = home / f"rootless-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    shutil.chown(work, rootless_user.pw_uid, rootless_user.pw_gid)
    config = work / "pybuildkitd.toml"
    config.write_text(builder_config.read_text())
    base = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH)
    state = base.run(["/bin/sh", "-c", "id -u > /uid.txt && rm /bin/true && echo rootless > /r.txt"]).root()
    try:
        proc = subprocess.run(
            ["runuser", "-u", USER, "--", "rootlesskit", "--net=host", "--copy-up=/etc",
             sys.executable, "-m", "pybuildkit.appliance.cli.main", "--daemonless", "--root", str(work / "state"),
             "--config", str(config), "build", "--progress", "plain", "--output", f"type=local,dest={work / 'out'}"],
            input=state.marshal().SerializeToString(), capture_output=True, timeout=300)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        out = work / "out"
        assert (out / "uid.txt").read_text() == "0\n", "steps run as (mapped) root"
        assert (out / "r.txt").read_text() == "rootless\n"
        assert not (out / "bin" / "true").exists(), "a deletion inside the step is honoured"
        assert (out / "r.txt").stat().st_uid == rootless_user.pw_uid, "files belong to the user on the host"
    finally:
        subprocess.run(["runuser", "-u", USER, "--", "rootlesskit", "rm", "-rf", str(work)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
