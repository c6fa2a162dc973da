"""What the control plane serves: one Listener, RouteConfiguration, Cluster and
ClusterLoadAssignment per service, built from the zone's addresses.

Names follow wongnai/xds, the control plane the cluster runs, so that one target string works in
the lab and on a cluster: a Kubernetes Service port is the listener ``<service>.<namespace>:<port>``
and ``xds:///server.xds:50051`` asks for exactly that name. The lab maps each listener name to a
name in its zone file (:class:`Service`), so publishing addresses for DNS also publishes them here.

Each listener is an API listener (gRFC A27) whose HTTP connection manager takes its routes from
RDS over ADS; the one route sends everything to the cluster of the same name (or, for a service
split with a canary (:class:`Split`), shares the calls by weight between that cluster and the
canary's: Envoy's ``weighted_clusters``, which gRPC also honours, gRFC A28), of type EDS over
ADS, with the configured load-balancing policy (:mod:`.policies`) and HTTP/2 to the endpoints (so
an Envoy can use the cluster too; gRPC ignores that field). The endpoints form one locality of
weight 1, as a single-zone cluster's would.

A gRPC client that targets ``xds://AUTHORITY/name`` asks for ``xdstp://AUTHORITY/<type>/name``
(gRFC A47); the same service answers, and the resources it points to are named in the same
authority, since an xdstp name says which type it is.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

from hellolb_lab.dns import normalize
from hellolb_lab.xds import policies

_PREFIX = "type.googleapis.com/"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"

#: The discovery service of each type, as logs name it.
SHORT = {LISTENER: "LDS", ROUTE: "RDS", CLUSTER: "CDS", ENDPOINT: "EDS"}

#: Types whose first request may ask for everything (Envoy's wildcard LDS and CDS).
WILDCARD_TYPES = (LISTENER, CLUSTER)

#: Push order for one change: clusters before their endpoints before listeners before routes,
#: the "make before break" order of Envoy's xDS protocol page.
PUSH_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE)

_LISTENER_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?:\d{1,5}$")
_XDSTP = re.compile(r"^xdstp://(?P<authority>[^/]*)/(?P<type>[^/]+)/(?P<id>[^?#]+)")
_ROUTER = "envoy.filters.http.router"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


@dataclass(frozen=True)
class Service:
    """One listener name and where its endpoints come from: a zone name and a port."""

    listener: str
    zone_name: str
    port: int

    @property
    def host(self) -> str:
        return self.listener.rpartition(":")[0]


def parse_service(text: str) -> Service:
    """``LISTENER=ZONE_NAME[:PORT]``, e.g. ``server.lab:50051=server.lab``.

    The endpoints' port defaults to the listener's, as a Service's target port usually does.
    """
    listener, sep, target = text.partition("=")
    if not sep or not _LISTENER_NAME.match(listener) or not target:
        raise ValueError(
            f"{text!r}: expected LISTENER=ZONE_NAME[:PORT], e.g. server.lab:50051=server.lab"
        )
    zone_name, colon, port_text = target.partition(":")
    port = int(port_text) if colon and port_text.isdigit() else None
    if (colon and port is None) or not zone_name:
        raise ValueError(f"{text!r}: the zone name must be NAME or NAME:PORT")
    listener_port = int(listener.rpartition(":")[2])
    port = listener_port if port is None else port
    if not 1 <= port <= 65535 or not 1 <= listener_port <= 65535:
        raise ValueError(f"{text!r}: ports go from 1 to 65535")
    return Service(listener, normalize(zone_name), port)


@dataclass(frozen=True)
class Split:
    """The calls of ``listener``'s route shared with the cluster of ``canary`` (another served
    listener): ``percent`` of them to the canary, the rest to the listener's own cluster."""

    listener: str
    canary: str
    percent: int = 0


def parse_split(text: str) -> tuple[str, str]:
    """``LISTENER=CANARY_LISTENER``, e.g. ``server.lab:50051=canary.lab:50051``."""
    listener, sep, canary = text.partition("=")
    names = (listener, canary)
    if not sep or not all(_LISTENER_NAME.match(n) for n in names) or listener == canary:
        raise ValueError(
            f"{text!r}: expected LISTENER=CANARY_LISTENER, two different served listeners, "
            "e.g. server.lab:50051=canary.lab:50051"
        )
    return listener, canary


def _type_name(type_url: str) -> str:
    return type_url.removeprefix(_PREFIX)


def split_name(type_url: str, name: str) -> tuple[str | None, str]:
    """``(authority, plain name)`` of a resource name: ``(None, name)`` unless it is xdstp.

    An xdstp name of another type than ``type_url`` gives ``(authority, "")``: it names nothing.
    """
    match = _XDSTP.match(name)
    if match is None:
        return None, name
    if match["type"] != _type_name(type_url):
        return match["authority"], ""
    return match["authority"], unquote(match["id"])


def resource_name(type_url: str, authority: str | None, plain: str) -> str:
    """The name of ``plain``'s resource of ``type_url``, in ``authority`` if there is one."""
    if authority is None:
        return plain
    return f"xdstp://{authority}/{_type_name(type_url)}/{plain}"


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _ads() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.ApiVersion.V3,
    )


def listener(service: Service, authority: str | None) -> listener_pb2.Listener:
    """An API listener whose routes come from RDS (``service.listener`` names both)."""
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=service.listener,
        rds=hcm_pb2.Rds(
            config_source=_ads(),
            route_config_name=resource_name(ROUTE, authority, service.listener),
        ),
        http_filters=[hcm_pb2.HttpFilter(name=_ROUTER, typed_config=_pack(router_pb2.Router()))],
    )
    return listener_pb2.Listener(
        name=resource_name(LISTENER, authority, service.listener),
        api_listener=api_listener_pb2.ApiListener(api_listener=_pack(manager)),
    )


def _route_action(
    service: Service, authority: str | None, split: Split | None
) -> route_components_pb2.RouteAction:
    own = resource_name(CLUSTER, authority, service.listener)
    if split is None:
        return route_components_pb2.RouteAction(cluster=own)
    weights = (
        (own, 100 - split.percent),
        (resource_name(CLUSTER, authority, split.canary), split.percent),
    )
    return route_components_pb2.RouteAction(
        weighted_clusters=route_components_pb2.WeightedCluster(
            clusters=[
                route_components_pb2.WeightedCluster.ClusterWeight(
                    name=name, weight=wrappers_pb2.UInt32Value(value=weight)
                )
                for name, weight in weights
            ]
        )
    )


def route_configuration(
    service: Service, authority: str | None, split: Split | None = None
) -> route_pb2.RouteConfiguration:
    """Every call to the service's cluster, or shared by weight with a canary's (``split``).

    gRPC matches the target's host (with and without the port) against the domains; the ``*``
    lets a proxy route calls whose authority is the proxy's own address. The route
    configuration belongs to this one listener, so the catch-all cannot capture another
    service's calls.
    """
    route = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix=""),
        route=_route_action(service, authority, split),
    )
    host = route_components_pb2.VirtualHost(
        name=service.listener,
        domains=[service.listener, service.host, "*"],
        routes=[route],
    )
    return route_pb2.RouteConfiguration(
        name=resource_name(ROUTE, authority, service.listener), virtual_hosts=[host]
    )


def cluster(service: Service, authority: str | None, policy: str) -> cluster_pb2.Cluster:
    """An EDS cluster over ADS with load-balancing policy ``policy`` and HTTP/2 upstream."""
    http2 = http_protocol_options_pb2.HttpProtocolOptions(
        explicit_http_config=http_protocol_options_pb2.HttpProtocolOptions.ExplicitHttpConfig(
            http2_protocol_options={}
        )
    )
    return cluster_pb2.Cluster(
        name=resource_name(CLUSTER, authority, service.listener),
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(
            eds_config=_ads(),
            # Set even where it equals the cluster name: an xdstp name carries its type.
            service_name=resource_name(ENDPOINT, authority, service.listener),
        ),
        connect_timeout=duration_pb2.Duration(seconds=1),
        load_balancing_policy=policies.load_balancing_policy(policy),
        typed_extension_protocol_options={_HTTP_OPTIONS: _pack(http2)},
    )


def load_assignment(
    service: Service, authority: str | None, addresses: Sequence[str]
) -> endpoint_pb2.ClusterLoadAssignment:
    """The addresses as one locality of weight 1; no locality at all when there are none."""
    endpoints = [
        endpoint_components_pb2.LbEndpoint(
            endpoint=endpoint_components_pb2.Endpoint(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(address=ip, port_value=service.port)
                )
            ),
            health_status=health_check_pb2.HEALTHY,
        )
        for ip in sorted(addresses)
    ]
    localities = []
    if endpoints:
        localities.append(
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=base_pb2.Locality(),
                lb_endpoints=endpoints,
                load_balancing_weight=wrappers_pb2.UInt32Value(value=1),
                priority=0,
            )
        )
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=resource_name(ENDPOINT, authority, service.listener), endpoints=localities
    )


@dataclass(frozen=True)
class Catalog:
    """Every resource the control plane can serve right now, looked up by type and name."""

    services: Mapping[str, Service]
    endpoints: Mapping[str, tuple[str, ...]]
    policy: str = policies.DEFAULT
    #: Routes shared with a canary, by the listener whose route is split.
    splits: Mapping[str, Split] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        services: Iterable[Service],
        zone: Mapping[str, Sequence[str]],
        policy: str = policies.DEFAULT,
        splits: Iterable[Split] = (),
    ) -> Catalog:
        """The catalog for ``services`` with the addresses the zone holds for them now."""
        by_listener = {s.listener: s for s in services}
        endpoints = {
            s.listener: tuple(sorted(zone.get(s.zone_name, ()))) for s in by_listener.values()
        }
        return cls(by_listener, endpoints, policy, {s.listener: s for s in splits})

    def find(self, type_url: str, name: str) -> Message | None:
        """The resource called ``name``, or None if there is none."""
        authority, plain = split_name(type_url, name)
        service = self.services.get(plain)
        if service is None:
            return None
        if type_url == LISTENER:
            return listener(service, authority)
        if type_url == ROUTE:
            return route_configuration(service, authority, self.splits.get(plain))
        if type_url == CLUSTER:
            return cluster(service, authority, self.policy)
        if type_url == ENDPOINT:
            return load_assignment(service, authority, self.endpoints[service.listener])
        return None

    def all_names(self, type_url: str) -> list[str]:
        """What a wildcard subscription gets: every service, by its plain name."""
        return sorted(self.services) if type_url in WILDCARD_TYPES else []


def version_of(type_url: str, resources: Sequence[Message]) -> str:
    """A version string that changes exactly when the resources do (also across restarts)."""
    digest = hashlib.sha256(type_url.encode())
    for resource in resources:
        digest.update(resource.SerializeToString(deterministic=True))
    return digest.hexdigest()[:12]
