"""Property: no Dockerfile or LLB definition, however hostile, crashes the frontend or the loader
or takes over a second. CI runs a bounded number of examples; bench/fuzz.py runs the long campaign."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import (
    Kind,
    Outcome,
    run_definition,
    run_frontend,
    seed_dockerfiles,
)
from tests.fuzz.mutate import generate_definition, generate_dockerfile, mutate_bytes

SEEDS = seed_dockerfiles() or [b"FROM scratch\nRUN echo hi\n"]
BOUNDED = settings(max_examples=150, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _judge(outcome: Outcome) -> None:
    assert outcome.kind != Kind.uncaught, outcome.detail
    assert not outcome.slow, f"took {outcome.seconds:.2f} s"


@BOUNDED
@given(st.randoms(use_true_random=False))
def test_generated_dockerfiles_end_cleanly(rnd: random.Random) -> None:
    _judge(run_frontend(generate_dockerfile(rnd)))


@BOUNDED
@given(st.integers(0, len(SEEDS) - 1), st.randoms(use_true_random=False))
def test_mutated_conformance_dockerfiles_end_cleanly(index: int, rnd: random.Random) -> None:
    _judge(run_frontend(mutate_bytes(SEEDS[index], rnd, SEEDS)))


@BOUNDED
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_as_a_dockerfile_end_cleanly(data: bytes) -> None:
    _judge(run_frontend(data))


@BOUNDED
@given(st.randoms(use_true_random=False))
def test_generated_definitions_end_cleanly(rnd: random.Random) -> None:
    _judge(run_definition(generate_definition(rnd)))


@BOUNDED
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_as_a_definition_end_cleanly(data: bytes) -> None:
    _judge(run_definition(data))
