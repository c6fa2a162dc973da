"""Client settings, read once from the environment."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from hellolb.config import ConfigError, Env
from hellolb.logsetup import FORMATS, LEVELS

from hello_client.target import TARGET_HELP, is_valid_target
from hello_client.xds import XdsSettings, xds_settings

LB_POLICIES = ("round_robin", "pick_first")


@dataclass(frozen=True)
class ClientConfig:
    server_address: str
    client_id: str
    concurrency: int
    lb_policy: str
    health_check: bool
    rpc_timeout: float
    rpc_retries: int
    dns_min_time_between_resolutions: float
    summary_interval: float
    round_interval: float
    max_rounds: int
    max_duration: float
    startup_timeout: float
    log_responses: bool
    pod_ip: str
    node_name: str
    scenario: str
    log_level: str
    log_format: str
    xds: XdsSettings | None

    def as_log_fields(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientConfig:
        source = os.environ if environ is None else environ
        env = Env(source)
        address = env.string("SERVER_ADDRESS", "localhost:50051", max_length=2048)
        if not is_valid_target(address):
            raise ConfigError("SERVER_ADDRESS", address, TARGET_HELP)
        return cls(
            server_address=address,
            client_id=env.first(("CLIENT_ID", "POD_NAME"), socket.gethostname()),
            concurrency=env.integer("CONCURRENCY", 10, minimum=1, maximum=10_000),
            lb_policy=env.choice("LB_POLICY", "round_robin", LB_POLICIES),
            health_check=env.boolean("HEALTH_CHECK", True),
            rpc_timeout=env.duration("RPC_TIMEOUT", 5.0, minimum=0.001),
            rpc_retries=env.integer("RPC_RETRIES", 3, minimum=1, maximum=100),
            dns_min_time_between_resolutions=env.duration("DNS_MIN_TIME_BETWEEN_RESOLUTIONS", 30.0),
            summary_interval=env.duration("SUMMARY_INTERVAL", 5.0, minimum=0.1),
            round_interval=env.duration("ROUND_INTERVAL", 0.0),
            max_rounds=env.integer("MAX_ROUNDS", 0, minimum=0),
            max_duration=env.duration("MAX_DURATION", 0.0),
            startup_timeout=env.duration("STARTUP_TIMEOUT", 60.0, minimum=0.001),
            log_responses=env.boolean("LOG_RESPONSES", True),
            pod_ip=env.string("POD_IP", ""),
            node_name=env.string("NODE_NAME", ""),
            scenario=env.string("SCENARIO", ""),
            log_level=env.choice("LOG_LEVEL", "info", LEVELS),
            log_format=env.choice("LOG_FORMAT", "auto", FORMATS),
            xds=xds_settings(address, source),
        )
