"""The daemon's one line about the network its RUN steps get."""
from __future__ import annotations

import subprocess
import sys

from pybuildkit.worker.executor.netinfo import StepNetwork
from tests.conftest import require_root


def test_a_default_route_is_named_with_its_gateway_and_device() -> None:
    line = StepNetwork("tap0", "10.0.2.2", ("lo", "tap0")).summary()
    assert line == "network: RUN steps share the daemon's network: default route via 10.0.2.2 dev tap0"


def test_no_default_route_warns_that_steps_have_no_outbound_network() -> None:
    line = StepNetwork(None, None, ("lo",)).summary()
    assert "no default route" in line and "no outbound network" in line and "lo" in line


def test_a_fresh_network_namespace_is_read_as_having_no_route() -> None:
    require_root("it unshares a network namespace")
    probe = ("from pybuildkit.worker.executor.netinfo import step_network; "
             "n = step_network(); print(n.interface, n.interfaces)")
    out = subprocess.run(["unshare", "--net", sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None ('lo',)"
