"""Which network a step gets.

- NONE: a fresh network namespace. A `network` namespace entry without a path makes the
  runtime create one, and it brings `lo` up, so the step sees only loopback.
- HOST: the namespace the executor runs in (no namespace entry).
- SANDBOX (the LLB default): buildkitd's `auto` network mode without CNI configured falls back
  to host networking, so we do the same: as root that is the host's network, inside
  rootlesskit it is rootlesskit's (slirp4netns) network, which is what rootless BuildKit gives
  its steps too. A bridged per-step network (pyroute2 netns + veth) can later plug in here.
"""
from __future__ import annotations

from pybuildkit.worker.executor.types import NetMode


def creates_network_namespace(mode: NetMode) -> bool:
    return mode == NetMode.NONE


def network_namespaces(mode: NetMode) -> list[dict[str, str]]:
    """OCI `linux.namespaces` entries for the network side of a step."""
    return [{"type": "network"}] if creates_network_namespace(mode) else []


def resolver_mode(mode: NetMode) -> NetMode:
    """How resolv.conf is filtered: only explicit host networking keeps loopback resolvers,
    as in BuildKit (the default mode filters them even when it shares the host network)."""
    return NetMode.HOST if mode == NetMode.HOST else NetMode.SANDBOX
