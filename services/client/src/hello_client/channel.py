"""The client's channel: target, load balancing, health checking, DNS re-resolution floor."""

from __future__ import annotations

import json

import grpc
from hellolb.v1 import hello_pb2

from hello_client.config import ClientConfig

# The health name the client watches on each server: the service it calls.
HEALTH_SERVICE = hello_pb2.DESCRIPTOR.services_by_name["HelloService"].full_name


def service_config(config: ClientConfig) -> dict[str, object]:
    """The channel's service config: the balancing policy, and health checking when asked.

    With health checking, each connection streams the server's health (grpc.health.v1
    Watch) and round_robin stops picking a server that reports NOT_SERVING, as a draining
    server does; it picks it again once it says SERVING. pick_first ignores health checking
    by design (gRFC A17). Through a proxy or a virtual IP every stream reaches one backend,
    whose health would stand for all the others: turn it off there.
    """
    result: dict[str, object] = {"loadBalancingConfig": [{config.lb_policy: policy_config(config)}]}
    if config.health_check:
        result["healthCheckConfig"] = {"serviceName": HEALTH_SERVICE}
    return result


def policy_config(config: ClientConfig) -> dict[str, object]:
    """The settings of the balancing policy: only weighted_round_robin has any here.

    weighted_round_robin (gRFC A58) weighs each server by the ORCA load reports its answers
    carry, recomputing the weights every ``weightUpdatePeriod``; a server's weight counts only
    once it has reported for ``blackoutPeriod``, and until two servers have weights it behaves
    as round_robin. ``errorUtilizationPenalty`` raises the utilization of a server that
    answers with errors, in proportion to its error rate.
    """
    if config.lb_policy != "weighted_round_robin":
        return {}
    return {
        "blackoutPeriod": proto_duration(config.wrr_blackout_period),
        "weightUpdatePeriod": proto_duration(config.wrr_weight_update_period),
        "errorUtilizationPenalty": config.wrr_error_utilization_penalty,
    }


def proto_duration(seconds: float) -> str:
    """A duration in the JSON form of google.protobuf.Duration: ``"1.5s"``."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def channel_options(config: ClientConfig) -> list[tuple[str, str | int]]:
    return [
        ("grpc.service_config", json.dumps(service_config(config))),
        # Never look up TXT records for a service config: ours is the one above.
        ("grpc.service_config_disable_resolution", 1),
        (
            "grpc.dns_min_time_between_resolutions_ms",
            round(config.dns_min_time_between_resolutions * 1000),
        ),
        # One retry layer only: tenacity in hello_client.retry, not grpc's retryPolicy.
        ("grpc.enable_retries", 0),
        # Each channel gets its own connections, even with several clients in one process.
        ("grpc.use_local_subchannel_pool", 1),
    ]


def create_channel(config: ClientConfig) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(config.server_address, options=channel_options(config))
