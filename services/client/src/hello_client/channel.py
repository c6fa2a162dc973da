"""The client's channel: target, load balancing, health checking, DNS re-resolution floor."""

from __future__ import annotations

import json

import grpc
from hellolb.v1 import hello_pb2

from hello_client.config import Balancing, ClientConfig

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
    result: dict[str, object] = {"loadBalancingConfig": [balancing(config.balancing)]}
    if config.health_check:
        result["healthCheckConfig"] = {"serviceName": HEALTH_SERVICE}
    return result


#: With fewer servers than this, grpc ejects none (gRFC A50's default is 5, more than a small
#: fleet has); with one server alone there would be nowhere else to send the calls.
OUTLIER_MINIMUM_SERVERS = 2


def balancing(config: Balancing) -> dict[str, object]:
    """The channel's balancing policy: LB_POLICY, inside outlier detection when asked."""
    policy: dict[str, object] = {config.lb_policy: policy_config(config)}
    if not config.outlier_detection:
        return policy
    # gRFC A50: every OUTLIER_INTERVAL, a server whose calls in that interval were at least
    # OUTLIER_MIN_CALLS and failed at OUTLIER_FAILURE_PERCENTAGE or more is ejected (reported
    # TRANSIENT_FAILURE to the child policy) for OUTLIER_EJECTION_TIME times the number of its
    # ejections so far. A failure is any status but OK. grpc's default caps ejections at 10 %
    # of the servers, and ejects one server at least.
    return {
        "outlier_detection_experimental": {
            "interval": proto_duration(config.outlier_interval),
            "baseEjectionTime": proto_duration(config.outlier_ejection_time),
            "failurePercentageEjection": {
                "threshold": config.outlier_failure_percentage,
                "enforcementPercentage": 100,
                "minimumHosts": OUTLIER_MINIMUM_SERVERS,
                "requestVolume": config.outlier_min_calls,
            },
            "childPolicy": [policy],
        }
    }


def policy_config(config: Balancing) -> dict[str, object]:
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
