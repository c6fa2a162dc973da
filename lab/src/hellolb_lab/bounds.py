"""The one reach bound: seconds within which every new server must answer after the scale-up.

The lab and the cluster check both call :func:`reach_bound`, with the scenario's rule from the
catalogue and the settings from its rendered overlay. Settings are parsed once, by the services'
own config classes (:func:`server_settings`, :func:`client_settings`), defaults included, so a
bound cannot disagree with what the processes do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hello_client.config import ClientConfig
from hello_server.config import ServerConfig
from hellolb.config import ConfigError

from hellolb_lab import envoy
from hellolb_lab.catalogue import Bound, Scenario
from hellolb_lab.errors import LabError

#: Added in the lab for process start-up, connecting and log timestamps.
LAB_MARGIN_S = 2.0
#: Added on a cluster: log timestamps, endpoint propagation, pod readiness.
CLUSTER_MARGIN_S = 5.0
#: gRPC spreads max connection age by +-10% so that connections do not all close at once.
MAX_AGE_JITTER = 1.1
#: Linkerd's destination service pushes endpoint changes to the proxies within seconds.
CONTROL_PLANE_PUSH_S = 10.0
#: An xDS control plane pushes a change to every subscribed client as it sees it: wongnai/xds
#: rebuilds its snapshot on every Endpoints watch event, with no batching or delay
#: (snapshot/endpoints.go), and the lab's stand-in notices a zone change at once (inotify), or
#: at its safety poll at the latest (:data:`hellolb_lab.xds.watch.SAFETY_POLL_S`). Pushes take
#: milliseconds; this is their ceiling, and the margin covers the rest.
XDS_PUSH_S = 1.0
#: gRPC's connection backoff (grpc/grpc doc/connection-backoff.md): a client whose control plane
#: is gone tries again after 1 s, then each wait 1.6 times longer, +-20%, at most 120 s.
BACKOFF_INITIAL_S = 1.0
BACKOFF_MULTIPLIER = 1.6
BACKOFF_JITTER = 0.2
BACKOFF_MAX_S = 120.0


def server_settings(name: str, env: Mapping[str, str]) -> ServerConfig:
    """The server's settings in ``env``, by the server's own parser."""
    try:
        return ServerConfig.from_env(env)
    except ConfigError as error:
        raise LabError(f"{name}: the server's settings: {error}") from None


def client_settings(name: str, env: Mapping[str, str]) -> ClientConfig:
    """The client's settings in ``env``, by the client's own parser. The target is set aside:
    the bounds do not read it, and an xDS target would need its bootstrap file, which only
    the lab writes (:class:`hellolb_lab.plan.Plan` keeps the target apart)."""
    try:
        return ClientConfig.from_env({**env, "SERVER_ADDRESS": "localhost:50051"})
    except ConfigError as error:
        raise LabError(f"{name}: the client's settings: {error}") from None


def reach_bound(
    scenario: Scenario,
    *,
    server: ServerConfig,
    client: ClientConfig,
    envoy_config: Mapping[str, Any] | None = None,
    dns_refresh_s: float | None = None,
    margin_s: float = LAB_MARGIN_S,
) -> float | None:
    """The bound of ``scenario`` under these settings, or ``None`` for a scenario whose new
    servers are not expected to answer.

    - max age: a connection lives at most ``MAX_CONNECTION_AGE x 1.1``; its GOAWAY makes the
      client resolve again, no sooner than ``DNS_MIN_TIME_BETWEEN_RESOLUTIONS`` allows;
    - Envoy DNS: Envoy re-resolves its STRICT_DNS cluster every ``dns_refresh_rate`` (or
      ``dns_refresh_s``, when the caller knows better, e.g. the TTL under ``respect_dns_ttl``)
      and balances each request;
    - control plane: the mesh pushes new endpoints to the client's proxy;
    - xDS push: the control plane pushes new endpoints to the client's own gRPC.
    """
    rule = scenario.bound
    if rule is Bound.NONE:
        return None
    if rule is Bound.MAX_AGE:
        age = server.max_connection_age
        if age is None:
            raise LabError(
                f"{scenario.name}: the overlay sets no MAX_CONNECTION_AGE for the server"
            )
        floor = client.dns_min_time_between_resolutions
        return round(age * MAX_AGE_JITTER + floor + margin_s, 3)
    if rule is Bound.ENVOY_DNS:
        if dns_refresh_s is None:
            if envoy_config is None:
                raise LabError(f"{scenario.name}: the overlay has no Envoy config")
            dns_refresh_s = envoy.dns_refresh_seconds(dict(envoy_config))
        return round(dns_refresh_s + margin_s, 3)
    if rule is Bound.XDS_PUSH:
        return round(XDS_PUSH_S + margin_s, 3)
    return round(CONTROL_PLANE_PUSH_S + margin_s, 3)


def reconnect_wait(outage_s: float) -> float:
    """The longest a gRPC client may wait, once its control plane is back after ``outage_s``
    seconds, before it tries to connect again: the longest possible backoff step in progress
    when the outage ends, counting the steps before it as short as the jitter allows."""
    backoff, elapsed = BACKOFF_INITIAL_S, 0.0
    while True:
        step = min(backoff, BACKOFF_MAX_S)
        elapsed += step * (1 - BACKOFF_JITTER)
        if elapsed >= outage_s:
            return round(step * (1 + BACKOFF_JITTER), 3)
        backoff *= BACKOFF_MULTIPLIER


def rejoin_bound(outage_s: float, *, margin_s: float = LAB_MARGIN_S) -> float:
    """Seconds within which a server published while the xDS control plane was down for
    ``outage_s`` answers once it is back: the client's reconnection wait, the push, the margin."""
    return round(reconnect_wait(outage_s) + XDS_PUSH_S + margin_s, 3)


def stream_cut(
    server: ServerConfig, *, margin_s: float = LAB_MARGIN_S
) -> tuple[float, float] | None:
    """Seconds after its connection opened within which a stream is cut, where the server
    limits its connections' age and grace: from ``age x 0.9 + grace - margin`` to
    ``age x 1.1 + grace + margin`` (gRPC's jitter). ``None`` where nothing cuts streams: no
    maximum age, or an age with no grace (the GOAWAY alone never ends a stream)."""
    age, grace = server.max_connection_age, server.max_connection_age_grace
    if age is None or grace is None:
        return None
    low = age * (2 - MAX_AGE_JITTER) + grace - margin_s
    return round(max(low, 0.0), 3), round(age * MAX_AGE_JITTER + grace + margin_s, 3)
