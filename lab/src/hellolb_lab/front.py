"""What answers the client's target, read from the overlay: the servers themselves (a headless
Service), a virtual address (a ClusterIP Service, and kube-proxy), the proxy replicas, or the
client's own Envoy (an ``ipv4:`` target on loopback)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from hellolb_lab.errors import LabError
from hellolb_lab.overlay import Overlay

#: Where the lab answers the cluster's DNS names.
CLUSTER_DOMAIN = "svc.cluster.local"


class Front(enum.Enum):
    """What answers the client's target."""

    SERVERS = "the servers (headless Service)"
    KUBE_PROXY = "a virtual address (ClusterIP Service and kube-proxy)"
    PROXIES = "the proxy replicas"
    SIDECAR = "the client's own Envoy"


@dataclass(frozen=True)
class Target:
    """The client's target: ``name`` is the FQDN the lab DNS answers (``None`` for the sidecar's
    loopback address)."""

    front: Front
    name: str | None
    port: int


def split_target(target: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a gRPC target such as ``dns:///server:50051``."""
    match = re.fullmatch(r"(?:(dns|ipv4):(?://[^/]*/)?)?([^:/,]+):(\d+)", target)
    if match is None:
        raise LabError(f"the lab cannot rewrite SERVER_ADDRESS={target!r}")
    return match[1] or "dns", match[2], int(match[3])


def resolve(name: str, ov: Overlay, address: str) -> Target:
    """What answers ``address``, the client's ``SERVER_ADDRESS`` in scenario ``name``."""
    scheme, host, port = split_target(address)
    if scheme == "ipv4":
        if not ov.sidecar:
            raise LabError(f"{name}: an ipv4 target needs a sidecar in the overlay")
        return Target(Front.SIDECAR, None, port)
    service = host.split(".")[0]
    fqdn = host if "." in host else f"{host}.{ov.namespace}.{CLUSTER_DOMAIN}"
    if ov.services.get(service) is False:
        return Target(Front.KUBE_PROXY, fqdn, port)
    if ov.proxy_replicas is not None and service == "proxy":
        return Target(Front.PROXIES, fqdn, port)
    return Target(Front.SERVERS, fqdn, port)
