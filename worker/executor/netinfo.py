"""What network the build steps will have, said once when the daemon starts.

Steps in the default mode share the daemon's network namespace (as BuildKit without CNI does):
on a host that is the host's network, under rootlesskit it is slirp4netns's `tap0`. A daemon
whose namespace has no default route gives its steps no outbound network, and `RUN apt-get
update` then fails minutes later with a resolver error that does not say why; one line at start
says it first. pyroute2 reads the routes over netlink (no `ip` binary, no parsing).
"""
from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class StepNetwork:
    interface: str | None  # the default route's device, None without one
    gateway: str | None
    interfaces: tuple[str, ...]

    def summary(self) -> str:
        if self.interface is None:
            return ("network: this namespace has no default route: RUN steps get no outbound network "
                    f"(interfaces: {', '.join(self.interfaces) or 'none'})")
        via = f" via {self.gateway}" if self.gateway else ""
        return f"network: RUN steps share the daemon's network: default route{via} dev {self.interface}"


def step_network() -> StepNetwork | None:
    """None when netlink cannot be read (then nothing is said)."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return None
    try:
        with IPRoute() as ip:
            names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ip.get_links()}
            for family in (socket.AF_INET, socket.AF_INET6):
                for route in ip.get_default_routes(family=family):
                    device = names.get(route.get_attr("RTA_OIF"))
                    if device is not None:
                        return StepNetwork(device, route.get_attr("RTA_GATEWAY"), tuple(names.values()))
    except OSError:
        return None
    return StepNetwork(None, None, tuple(names.values()))
