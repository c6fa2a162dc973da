"""What answers the client's target, read from the overlay: the servers themselves (a headless
Service), a virtual address (a ClusterIP Service, and kube-proxy), the proxy replicas, or the
client's own Envoy (an ``ipv4:`` target on loopback), or the servers an xDS control plane
pushes to the client's own gRPC (an ``xds:`` target)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from hello_client.target import split_xds

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
    CONTROL_PLANE = "the servers an xDS control plane pushes to the client"


@dataclass(frozen=True)
class Target:
    """The client's target: ``name`` is the FQDN the lab DNS answers (``None`` for the sidecar's
    loopback address and for an ``xds:`` target, which the lab keeps as the overlay wrote it in
    ``address``)."""

    front: Front
    name: str | None
    port: int
    address: str = ""


def split_target(target: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a gRPC target such as ``dns:///server:50051``."""
    match = re.fullmatch(r"(?:(dns|ipv4):(?://[^/]*/)?)?([^:/,]+):(\d+)", target)
    if match is None:
        raise LabError(f"the lab cannot rewrite SERVER_ADDRESS={target!r}")
    return match[1] or "dns", match[2], int(match[3])


def resolve(name: str, ov: Overlay, address: str) -> Target:
    """What answers ``address``, the client's ``SERVER_ADDRESS`` in scenario ``name``."""
    xds = split_xds(address)
    if xds is not None:
        return _xds_target(name, ov, address, xds[1])
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


def _xds_target(name: str, ov: Overlay, address: str, listener: str) -> Target:
    """An ``xds:`` target: the listener must be a Service port of the overlay, named as
    wongnai/xds names it, ``<service>.<namespace>:<port>``."""
    host, _, port = listener.rpartition(":")
    service, _, namespace = host.partition(".")
    if service != "server" or namespace != ov.namespace or service not in ov.services:
        raise LabError(
            f"{name}: the client asks the control plane for the listener {listener!r}; the lab "
            f"serves the server Service's, server.{ov.namespace}:<port>"
        )
    return Target(Front.CONTROL_PLANE, None, int(port), address)
