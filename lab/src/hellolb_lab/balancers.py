"""The balancers the uneven-servers comparison runs, each one record, and the faults it injects.

A balancer is either the client's own gRPC policy (its ``LB_POLICY`` and ``OUTLIER_*``
settings, the client connected to every server) or an Envoy in front of the servers, running
the ``proxy`` scenario's ConfigMap with the cluster's balancing changed and nothing else: the
same routes, retries, health checks and HTTP/2 upstream (:func:`envoy_config`).

The policies' timings are the lab's, shorter than on a cluster, so that a run of a few seconds
shows each policy settled: weights count from :data:`WEIGHTS_AFTER_S`, and outlier detection
judges every :data:`OUTLIER_INTERVAL_S`. A run's warm-up must cover :func:`settle_seconds`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hellolb_lab import envoy
from hellolb_lab.errors import LabError

#: Weighted round robin (grpc's and Envoy's): a server's weight counts once it has reported for
#: this long (the blackout period; 10 s by default in both), and is recomputed this often.
WEIGHTS_AFTER_S = 0.5
WEIGHT_UPDATE_S = 0.1
#: grpc's outlier detection: judge each server every interval, on at least this many calls,
#: and eject it when at least this share of them failed (gRFC A50's failure percentage).
OUTLIER_INTERVAL_S = 0.5
OUTLIER_MIN_CALLS = 10
OUTLIER_FAILURE_PERCENTAGE = 50

CSWRR = "envoy.load_balancing_policies.client_side_weighted_round_robin"
CSWRR_TYPE = (
    "type.googleapis.com/envoy.extensions.load_balancing_policies."
    "client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin"
)


@dataclass(frozen=True)
class Balancer:
    """One way of balancing: the client's own policy, or an Envoy's (``envoy`` true).

    ``client_env`` is added to the client's environment; for Envoy, ``cluster`` sets keys of
    the ConfigMap's cluster (a mapping is merged into the ConfigMap's mapping of that key) and
    ``drop`` removes some (``outlier_detection``).
    """

    name: str
    label: str
    envoy: bool = False
    client_env: Mapping[str, str] = field(default_factory=dict)
    cluster: Mapping[str, Any] = field(default_factory=dict)
    drop: tuple[str, ...] = ()


def _seconds(value: float) -> str:
    return f"{value:g}s"


GRPC_WRR_ENV = {
    "LB_POLICY": "weighted_round_robin",
    "WRR_BLACKOUT_PERIOD": _seconds(WEIGHTS_AFTER_S),
    "WRR_WEIGHT_UPDATE_PERIOD": _seconds(WEIGHT_UPDATE_S),
}
GRPC_OUTLIER_ENV = {
    "OUTLIER_DETECTION": "true",
    "OUTLIER_INTERVAL": _seconds(OUTLIER_INTERVAL_S),
    "OUTLIER_MIN_CALLS": str(OUTLIER_MIN_CALLS),
    "OUTLIER_FAILURE_PERCENTAGE": str(OUTLIER_FAILURE_PERCENTAGE),
}
# Envoy's client-side weighted round robin reads the same per-call ORCA trailer as grpc's.
# www.envoyproxy.io/docs/envoy/v1.40.0/api-v3/extensions/load_balancing_policies/
# client_side_weighted_round_robin/v3/client_side_weighted_round_robin.proto
ENVOY_WRR_POLICY = {
    "policies": [
        {
            "typed_extension_config": {
                "name": CSWRR,
                "typed_config": {
                    "@type": CSWRR_TYPE,
                    "blackout_period": _seconds(WEIGHTS_AFTER_S),
                    "weight_update_period": _seconds(WEIGHT_UPDATE_S),
                },
            }
        }
    ]
}

#: Every balancer, in the order of the table; the first is the baseline of the ratios.
BALANCERS: tuple[Balancer, ...] = (
    Balancer("round_robin", "grpc round_robin"),
    Balancer("weighted_round_robin", "grpc weighted_round_robin (ORCA)", client_env=GRPC_WRR_ENV),
    Balancer(
        "outlier_detection", "grpc round_robin + outlier detection", client_env=GRPC_OUTLIER_ENV
    ),
    Balancer(
        "envoy_round_robin",
        "Envoy ROUND_ROBIN",
        envoy=True,
        cluster={"lb_policy": "ROUND_ROBIN"},
        drop=("outlier_detection",),
    ),
    Balancer(
        "envoy_least_request",
        "Envoy LEAST_REQUEST",
        envoy=True,
        cluster={"lb_policy": "LEAST_REQUEST"},
        drop=("outlier_detection",),
    ),
    # As shipped in the proxy scenario: round robin with its outlier detection, whose
    # ejections hold for base_ejection_time even while the server passes its health checks.
    Balancer("envoy_outlier_detection", "Envoy ROUND_ROBIN + outlier detection", envoy=True),
    # The same with Envoy's default: a passing active health check takes an ejected server
    # back at once, and a server failing every call can still report SERVING.
    # www.envoyproxy.io/docs/envoy/v1.40.0/api-v3/config/cluster/v3/outlier_detection.proto
    Balancer(
        "envoy_outlier_detection_unejected",
        "Envoy ROUND_ROBIN + outlier detection, unejected by health checks",
        envoy=True,
        cluster={"outlier_detection": {"successful_active_health_check_uneject_host": True}},
    ),
    Balancer(
        "envoy_weighted_round_robin",
        "Envoy client-side WRR (ORCA)",
        envoy=True,
        cluster={"load_balancing_policy": ENVOY_WRR_POLICY},
        drop=("outlier_detection", "lb_policy"),
    ),
)
BASELINE = BALANCERS[0].name

#: The client's ``LB_POLICY`` values that weigh servers by their ORCA load reports.
GRPC_ORCA_POLICIES = ("weighted_round_robin",)
#: Envoy load-balancing policy extensions that read them.
ENVOY_ORCA_POLICIES = (CSWRR,)


def envoy_policy_names(cluster: Mapping[str, Any]) -> list[str]:
    """The extension names of an Envoy cluster's ``load_balancing_policy``."""
    policies = (cluster.get("load_balancing_policy") or {}).get("policies") or []
    return [str((p.get("typed_extension_config") or {}).get("name", "")) for p in policies]


def reads_load_reports(balancer: Balancer) -> bool:
    """The balancer weighs servers by their ORCA reports, so its servers must send them
    (``ORCA_REPORTS``, off by default: every other balancer ignores the trailer)."""
    if balancer.client_env.get("LB_POLICY") in GRPC_ORCA_POLICIES:
        return True
    names = envoy_policy_names(balancer.cluster) if balancer.envoy else []
    return any(n in ENVOY_ORCA_POLICIES for n in names)


def names() -> list[str]:
    return [b.name for b in BALANCERS]


def chosen(wanted: Sequence[str] | None) -> list[Balancer]:
    """The balancers named (all by default), in table order; :class:`LabError` for an unknown
    name."""
    if not wanted:
        return list(BALANCERS)
    unknown = sorted(set(wanted) - set(names()))
    if unknown:
        raise LabError(f"unknown balancer {', '.join(unknown)}; known: {', '.join(names())}")
    return [b for b in BALANCERS if b.name in wanted]


def settle_seconds() -> float:
    """How long every policy needs before it shows its steady state: the weights' blackout and
    two updates, or two outlier-detection intervals, whichever is longer."""
    return max(WEIGHTS_AFTER_S + 2 * WEIGHT_UPDATE_S, 2 * OUTLIER_INTERVAL_S)


@dataclass(frozen=True)
class Fault:
    """What makes the bad server bad: its extra environment, for a given work time."""

    name: str
    describe: str
    env: Mapping[str, str]


def fault(name: str, work_ms: float, slowdown: float = 10.0, code: str = "INTERNAL") -> Fault:
    """``slow``: the bad server takes ``slowdown`` times as long per call (its extra latency on
    top of the work time); ``failing``: it answers every call at once with ``code`` (INTERNAL by
    default, which neither the client nor Envoy retries, so each call it takes is an error the
    client sees)."""
    if name == "slow":
        extra = work_ms * (slowdown - 1)
        return Fault(
            "slow",
            f"{slowdown:g}x slower (FAULT_LATENCY={extra:g}ms)",
            {"FAULT_LATENCY": f"{extra:g}ms"},
        )
    if name == "failing":
        return Fault(
            "failing",
            f"failing fast with {code} (FAULT_ERROR_RATE=1)",
            {"FAULT_ERROR_RATE": "1", "FAULT_ERROR_CODE": code},
        )
    raise LabError(f"unknown fault {name!r}; known: slow, failing")


FAULTS = ("slow", "failing")


def _server_cluster(config: Mapping[str, Any]) -> str:
    """The cluster the ConfigMap's first route sends calls to."""
    try:
        listener = config["static_resources"]["listeners"][0]
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
        return str(route["cluster"])
    except (KeyError, IndexError, TypeError) as exc:
        raise LabError(f"the proxy's Envoy config has no route to a cluster ({exc!r})") from None


def listener_port(config: Mapping[str, Any]) -> int:
    """The port of the Envoy config's first listener, the one clients call."""
    listener = config["static_resources"]["listeners"][0]
    return int(listener["address"]["socket_address"]["port_value"])


def envoy_config(
    base: Mapping[str, Any],
    balancer: Balancer,
    *,
    servers: Sequence[tuple[str, int]],
    listen_ip: str,
) -> dict[str, Any]:
    """The proxy scenario's Envoy config for one balancer: listeners and admin on
    ``listen_ip``; the route's cluster given ``servers`` as static endpoints (no DNS: the
    servers do not change in this comparison), with the balancer's policy."""
    config = copy.deepcopy(dict(base))
    name = _server_cluster(config)
    clusters = (config.get("static_resources") or {}).get("clusters") or []
    cluster = next((c for c in clusters if c.get("name") == name), None)
    if cluster is None:
        raise LabError(f"the proxy's Envoy config has no cluster {name!r}")
    for key in ("dns_refresh_rate", "dns_lookup_family", *balancer.drop):
        cluster.pop(key, None)
    for key, value in copy.deepcopy(dict(balancer.cluster)).items():
        if isinstance(value, dict) and isinstance(cluster.get(key), dict):
            cluster[key].update(value)
        else:
            cluster[key] = value
    cluster["type"] = "STATIC"
    cluster["load_assignment"] = {
        "cluster_name": name,
        "endpoints": [
            {
                "lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": h, "port_value": p}}}}
                    for h, p in servers
                ]
            }
        ],
    }
    # No DNS cluster is left, so this only moves the listeners and the admin interface.
    return envoy.adapt(config, dns=(listen_ip, 0), listen_ip=listen_ip)
