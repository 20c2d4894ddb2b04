"""A session's secrets reach only the builds of that session, even while another client's build
runs on the same daemon at the same moment."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pybuildkit.solver.llb import builder as llb
from tests.integration.daemon.conftest import Daemon

pytestmark = pytest.mark.integration


def _secret_step(base_image: str, nonce: str) -> bytes:
    state = llb.image(base_image).run(
        ["/bin/sh", "-c", f"sleep 2; echo {nonce}; cat /run/secrets/tok > /seen"],
        secrets=[llb.SecretMount("tok", target="/run/secrets/tok")]).root()
    return state.marshal().SerializeToString()


def test_a_secret_of_one_session_is_not_readable_by_another(daemon: Daemon, base_image: str, tmp_path: Path) -> None:
    secret = tmp_path / "tok.secret"
    secret.write_text("only-for-alice")

    def start(args: list[str], definition: bytes, out: Path) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main", "--addr", daemon.address, "build",
               "--progress", "plain", "--output", f"type=local,dest={out}", *args]
        stdin = out.parent / f"{out.name}.def"
        stdin.write_bytes(definition)
        with open(stdin, "rb") as handle:
            return subprocess.Popen(cmd, stdin=handle, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    alice = start(["--secret", f"id=tok,src={secret}"], _secret_step(base_image, "alice"), tmp_path / "a")
    mallory = start([], _secret_step(base_image, "mallory"), tmp_path / "m")
    alice_err = alice.communicate(timeout=300)[1].decode()
    mallory_err = mallory.communicate(timeout=300)[1].decode()
    assert alice.returncode == 0, alice_err
    assert (tmp_path / "a" / "seen").read_text() == "only-for-alice"
    assert mallory.returncode == 1
    assert "secret tok: not found" in mallory_err
    assert not (tmp_path / "m").exists()
    assert "only-for-alice" not in mallory_err and "only-for-alice" not in daemon.log()
