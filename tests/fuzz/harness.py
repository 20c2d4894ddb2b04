"""Runs one hostile input through the frontend (parse + convert to LLB, nothing run) or the
definition loader and classifies what happened.

Shared by the hypothesis suite (tests/fuzz) and the long campaign (bench/fuzz.py), so both judge
an input the same way: a typed `BuildError` is a clean rejection, a definition is a conversion,
anything else is an uncaught exception, and anything over the time bound is slow.
"""
from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pybuildkit.frontend.dockerfile.builder import FrontendInputs, build
from pybuildkit.solver.definition import load_definition, parse_definition
from pybuildkit.solver.errors import BuildError
from pybuildkit.solver.platforms import parse_platform
from tests.fixtures.shared import CONFORMANCE

SLOW_SECONDS = 1.0
BUILD_PLATFORM = parse_platform("linux/amd64")


class Kind(StrEnum):
    clean = "clean error"
    converted = "converted"
    uncaught = "uncaught"


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    seconds: float
    detail: str = ""  # the exception and its last frames, for uncaught ones

    @property
    def slow(self) -> bool:
        return self.seconds > SLOW_SECONDS


def _classify(run, *args) -> Outcome:
    start = time.perf_counter()
    try:
        run(*args)
        kind, detail = Kind.converted, ""
    except BuildError as exc:
        place = f"{exc.filename}:{exc.start_line}: " if getattr(exc, "start_line", 0) else ""
        kind, detail = Kind.clean, (place + str(exc))[:400]
    except Exception as exc:  # noqa: BLE001 - the point is to catch what leaked
        kind = Kind.uncaught
        detail = f"{type(exc).__name__}: {str(exc)[:200]}\n" + "".join(traceback.format_tb(exc.__traceback__)[-4:])
    return Outcome(kind, time.perf_counter() - start, detail)


def _frontend(dockerfile: bytes, attrs: Mapping[str, str]) -> None:
    inputs = FrontendInputs(dockerfile=dockerfile, dockerfile_name="Dockerfile", dockerignore=None,
                            attrs=attrs, build_platform=BUILD_PLATFORM)
    asyncio.run(build(inputs))


def run_frontend(dockerfile: bytes, attrs: Mapping[str, str] | None = None) -> Outcome:
    return _classify(_frontend, dockerfile, dict(attrs or {}))


def run_definition(data: bytes) -> Outcome:
    return _classify(lambda raw: load_definition(parse_definition(raw)), data)


def seed_dockerfiles() -> list[bytes]:
    """Every Dockerfile of the conformance data: the mutation fuzzer's starting points."""
    seeds = []
    for path in sorted(CONFORMANCE.rglob("*")):
        if path.is_file() and "ockerfile" in path.name and path.stat().st_size < 64 * 1024:
            seeds.append(path.read_bytes())
    return seeds
