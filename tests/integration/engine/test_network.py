"""Step networking: the default network reaches what the daemon reaches (BuildKit's OCI worker
without CNI), `none` sees only loopback, `host` needs the entitlement."""
from __future__ import annotations

import pytest

from pybuildkit.solver.llb import builder as llb
from pybuildkit.solver.pb import ops_pb2 as pb

pytestmark = pytest.mark.integration


def test_the_default_network_reaches_a_server_of_the_host(pybuildctl, base_image, registry_host, tmp_path) -> None:
    """The test registry listens on the host's loopback; a default RUN fetches from it."""
    state = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH).run(
        ["/bin/sh", "-c", f"wget -q -O /v2.json http://{registry_host}/v2/ && echo reached > /ok"]).root()
    pybuildctl(["--output", f"type=local,dest={tmp_path / 'out'}"], stdin=state.marshal().SerializeToString())
    assert (tmp_path / "out" / "ok").read_text() == "reached\n"


def test_network_none_cannot_reach_it(pybuildctl, base_image, registry_host, tmp_path) -> None:
    state = llb.image(base_image).add_env("PATH", llb.DEFAULT_PATH).network(pb.NONE).run(
        ["/bin/sh", "-c", f"if wget -q -T 2 -O - http://{registry_host}/v2/; then echo leaked; else echo blocked; fi > /r;"
                          " ls /sys/class/net > /ifaces"]).root()
    pybuildctl(["--output", f"type=local,dest={tmp_path / 'out'}"], stdin=state.marshal().SerializeToString())
    assert (tmp_path / "out" / "r").read_text() == "blocked\n"
    assert (tmp_path / "out" / "ifaces").read_text().split() == ["lo"]
