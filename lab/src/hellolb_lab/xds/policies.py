"""The load-balancing policies a Cluster can name, by the names gRPC gives them.

A Cluster carries its policy in ``load_balancing_policy``: a list of typed extension configs
(gRFC A52), of which the client takes the first it supports. The lab control plane sends exactly
one, so a policy the client does not support is rejected (NACK) rather than silently replaced.

Names are gRPC's (``weighted_round_robin`` is Envoy's ``client_side_weighted_round_robin``;
``wrr_locality`` weights localities and round-robins inside each, as gRPC uses it). gRPC 1.85
accepts the first five; ``least_request`` (gRFC A48, Java and Go only), ``random`` and
``maglev`` are Envoy's and a gRPC C-core client rejects them. The tests prove which is which.
"""

from __future__ import annotations

from collections.abc import Callable

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3 import (
    client_side_weighted_round_robin_pb2 as wrr_pb2,
)
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.pick_first.v3 import pick_first_pb2
from envoy.extensions.load_balancing_policies.random.v3 import random_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2
from envoy.extensions.load_balancing_policies.wrr_locality.v3 import wrr_locality_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

DEFAULT = "round_robin"


def _typed(name: str, config: Message) -> extension_pb2.TypedExtensionConfig:
    packed = any_pb2.Any()
    packed.Pack(config)
    return extension_pb2.TypedExtensionConfig(
        name=f"envoy.load_balancing_policies.{name}", typed_config=packed
    )


def _wrr_locality() -> Message:
    # Localities by their EDS weight, then round robin among each locality's endpoints.
    inner = cluster_pb2.LoadBalancingPolicy(
        policies=[
            cluster_pb2.LoadBalancingPolicy.Policy(
                typed_extension_config=_typed("round_robin", round_robin_pb2.RoundRobin())
            )
        ]
    )
    return wrr_locality_pb2.WrrLocality(endpoint_picking_policy=inner)


#: Policy name -> (extension name, config). Ordered: gRPC's accepted ones first.
_POLICIES: dict[str, tuple[str, Callable[[], Message]]] = {
    "round_robin": ("round_robin", round_robin_pb2.RoundRobin),
    "ring_hash": ("ring_hash", ring_hash_pb2.RingHash),
    "weighted_round_robin": (
        "client_side_weighted_round_robin",
        wrr_pb2.ClientSideWeightedRoundRobin,
    ),
    "pick_first": ("pick_first", pick_first_pb2.PickFirst),
    "wrr_locality": ("wrr_locality", _wrr_locality),
    "least_request": ("least_request", least_request_pb2.LeastRequest),
    "random": ("random", random_pb2.Random),
    "maglev": ("maglev", maglev_pb2.Maglev),
}

#: Every policy the control plane can be told to send.
NAMES = tuple(_POLICIES)


def load_balancing_policy(name: str) -> cluster_pb2.LoadBalancingPolicy:
    """The Cluster's ``load_balancing_policy`` for policy ``name`` (one of :data:`NAMES`)."""
    try:
        extension, make = _POLICIES[name]
    except KeyError:
        raise ValueError(
            f"unknown load-balancing policy {name!r}; known: {', '.join(NAMES)}"
        ) from None
    return cluster_pb2.LoadBalancingPolicy(
        policies=[
            cluster_pb2.LoadBalancingPolicy.Policy(typed_extension_config=_typed(extension, make()))
        ]
    )
