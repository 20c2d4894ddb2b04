"""Typed build errors reach gRPC clients as the status code that says what went wrong."""
from __future__ import annotations

import grpc

from pybuildkit.appliance.daemon.errors import message, status_code
from pybuildkit.solver.budget import BudgetExceededError
from pybuildkit.solver.errors import BuildError


def test_a_build_over_its_frontend_budget_is_resource_exhausted() -> None:
    exc = BudgetExceededError("the Dockerfile frontend exceeded this build's time budget of 30 s", budget="time",
                              hint="simplify the build, or raise [frontend] time-budget in the daemon's config")
    assert status_code(exc) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert message(exc) == exc.message


def test_other_build_errors_keep_buildkits_unknown() -> None:
    assert status_code(BuildError("process did not complete successfully")) == grpc.StatusCode.UNKNOWN
