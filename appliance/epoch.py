"""SOURCE_DATE_EPOCH as BuildKit carries it: the frontend attribute `build-arg:SOURCE_DATE_EPOCH`.

BuildKit's reproducibility docs set the epoch with `--opt build-arg:SOURCE_DATE_EPOCH=N`, and
buildctl >= 0.13 turns the client's SOURCE_DATE_EPOCH environment variable into that attribute
when it is not given. The daemon reads only the attribute, never its own environment, so one
build's epoch cannot leak into another's.
"""
from __future__ import annotations

from collections.abc import Mapping

EPOCH_ARG = "build-arg:SOURCE_DATE_EPOCH"
ENV_NAME = "SOURCE_DATE_EPOCH"


def with_env_epoch(attrs: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The client side: `attrs` plus the environment's epoch, unless `--opt` already set one."""
    out = dict(attrs)
    if EPOCH_ARG not in out and environ.get(ENV_NAME):
        out[EPOCH_ARG] = environ[ENV_NAME]
    return out


def epoch_from_attrs(attrs: Mapping[str, str]) -> str | None:
    """The daemon side: the epoch a build's frontend attributes carry (None when unset or empty)."""
    return attrs.get(EPOCH_ARG) or None
