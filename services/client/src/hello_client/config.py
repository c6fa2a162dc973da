"""Client settings, read once from the environment."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from hellolb import ticks
from hellolb.config import ConfigError, Env
from hellolb.logsetup import FORMATS, LEVELS

from hello_client.target import TARGET_HELP, is_valid_target
from hello_client.xds import XdsSettings, xds_settings

LB_POLICIES = ("round_robin", "pick_first", "weighted_round_robin")

#: What the client sends. ``rounds``: CONCURRENCY calls at once, then wait for all of them.
#: ``closed_loop``: CONCURRENCY callers, each calling again as soon as it is answered.
#: ``streams``: CONCURRENCY Ticks streams kept open, a new one opened when one ends.
MODES = ("rounds", "closed_loop", "streams")


@dataclass(frozen=True)
class Balancing:
    """How the channel spreads the calls: LB_POLICY, and the settings of its policy (WRR_*) and
    of the outlier detection around it (OUTLIER_*). :mod:`hello_client.channel` turns them into
    the service config; an ``xds:`` target's control plane overrides them all."""

    lb_policy: str
    wrr_blackout_period: float
    wrr_weight_update_period: float
    wrr_error_utilization_penalty: float
    outlier_detection: bool
    outlier_interval: float
    outlier_ejection_time: float
    outlier_failure_percentage: int
    outlier_min_calls: int

    @classmethod
    def from_env(cls, env: Env) -> Balancing:
        return cls(
            lb_policy=env.choice("LB_POLICY", "round_robin", LB_POLICIES),
            # gRPC's own defaults (gRFC A58); it raises a weight update period under 100ms.
            wrr_blackout_period=env.duration("WRR_BLACKOUT_PERIOD", 10.0),
            wrr_weight_update_period=env.duration("WRR_WEIGHT_UPDATE_PERIOD", 1.0, minimum=0.1),
            wrr_error_utilization_penalty=env.number(
                "WRR_ERROR_UTILIZATION_PENALTY", 1.0, minimum=0, maximum=1000
            ),
            outlier_detection=env.boolean("OUTLIER_DETECTION", False),
            # gRPC's defaults (gRFC A50) for the interval and the ejection time; the failure
            # percentage and request volume are Envoy's defaults for the same ejection.
            outlier_interval=env.duration("OUTLIER_INTERVAL", 10.0, minimum=0.001),
            outlier_ejection_time=env.duration("OUTLIER_EJECTION_TIME", 30.0, minimum=0.001),
            outlier_failure_percentage=env.integer(
                "OUTLIER_FAILURE_PERCENTAGE", 85, minimum=1, maximum=100
            ),
            outlier_min_calls=env.integer("OUTLIER_MIN_CALLS", 50, minimum=1, maximum=1_000_000),
        )


@dataclass(frozen=True)
class ClientConfig:
    server_address: str
    client_id: str
    mode: str
    concurrency: int
    balancing: Balancing
    health_check: bool
    rpc_timeout: float
    rpc_retries: int
    limit_backoff: float
    limit_backoff_max: float
    dns_min_time_between_resolutions: float
    summary_interval: float
    round_interval: float
    max_rounds: int
    max_duration: float
    startup_timeout: float
    tick_interval: float
    log_responses: bool
    pod_ip: str
    node_name: str
    scenario: str
    log_level: str
    log_format: str
    xds: XdsSettings | None

    def as_log_fields(self) -> dict[str, object]:
        """The ``client.config`` fields: every setting, the balancing ones at the top level as
        they have always been logged."""
        fields = asdict(self)
        return {
            **{k: v for k, v in fields.items() if k != "balancing"},
            **fields["balancing"],
        }

    # The balancing settings by their former names, for readers of the flat configuration.
    @property
    def lb_policy(self) -> str:
        return self.balancing.lb_policy

    @property
    def wrr_blackout_period(self) -> float:
        return self.balancing.wrr_blackout_period

    @property
    def wrr_weight_update_period(self) -> float:
        return self.balancing.wrr_weight_update_period

    @property
    def wrr_error_utilization_penalty(self) -> float:
        return self.balancing.wrr_error_utilization_penalty

    @property
    def outlier_detection(self) -> bool:
        return self.balancing.outlier_detection

    @property
    def outlier_interval(self) -> float:
        return self.balancing.outlier_interval

    @property
    def outlier_ejection_time(self) -> float:
        return self.balancing.outlier_ejection_time

    @property
    def outlier_failure_percentage(self) -> int:
        return self.balancing.outlier_failure_percentage

    @property
    def outlier_min_calls(self) -> int:
        return self.balancing.outlier_min_calls

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
            mode=env.choice("CLIENT_MODE", "rounds", MODES),
            concurrency=env.integer("CONCURRENCY", 10, minimum=1, maximum=10_000),
            balancing=Balancing.from_env(env),
            health_check=env.boolean("HEALTH_CHECK", True),
            rpc_timeout=env.duration("RPC_TIMEOUT", 5.0, minimum=0.001),
            rpc_retries=env.integer("RPC_RETRIES", 3, minimum=1, maximum=100),
            # After a call answered RESOURCE_EXHAUSTED: the slot's first pause without a
            # pushback, and the cap on every pause and on a pushback waited for in a call.
            limit_backoff=env.duration("LIMIT_BACKOFF", 0.1, minimum=0.001, maximum=60.0),
            limit_backoff_max=env.duration("LIMIT_BACKOFF_MAX", 5.0, minimum=0.001, maximum=600.0),
            dns_min_time_between_resolutions=env.duration("DNS_MIN_TIME_BETWEEN_RESOLUTIONS", 30.0),
            summary_interval=env.duration("SUMMARY_INTERVAL", 5.0, minimum=0.1),
            round_interval=env.duration("ROUND_INTERVAL", 0.0),
            max_rounds=env.integer("MAX_ROUNDS", 0, minimum=0),
            max_duration=env.duration("MAX_DURATION", 0.0),
            startup_timeout=env.duration("STARTUP_TIMEOUT", 60.0, minimum=0.001),
            tick_interval=env.duration(
                "TICK_INTERVAL",
                ticks.DEFAULT_INTERVAL_MS / 1000,
                minimum=ticks.MIN_INTERVAL_MS / 1000,
                maximum=ticks.MAX_INTERVAL_MS / 1000,
            ),
            log_responses=env.boolean("LOG_RESPONSES", True),
            pod_ip=env.string("POD_IP", ""),
            node_name=env.string("NODE_NAME", ""),
            scenario=env.string("SCENARIO", ""),
            log_level=env.choice("LOG_LEVEL", "info", LEVELS),
            log_format=env.choice("LOG_FORMAT", "auto", FORMATS),
            xds=xds_settings(address, source),
        )
