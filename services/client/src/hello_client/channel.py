"""The client's channel: target, load-balancing policy and DNS re-resolution floor."""

from __future__ import annotations

import json

import grpc

from hello_client.config import ClientConfig


def channel_options(config: ClientConfig) -> list[tuple[str, str | int]]:
    service_config: dict[str, object] = {"loadBalancingConfig": [{config.lb_policy: {}}]}
    return [
        ("grpc.service_config", json.dumps(service_config)),
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
