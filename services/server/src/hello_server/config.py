"""Server settings, read once from the environment."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from ipaddress import ip_address

from hellolb.config import ConfigError, Env
from hellolb.logsetup import FORMATS, LEVELS

from hello_server.faults import ERROR_CODES, Faults

# On SIGTERM, how long the server keeps serving while it reports NOT_SERVING. Clients that
# watch its health (gRPC client-side health checking) stop sending within a round trip: in
# the SIGTERM stress check, with a core kept busy, no call reached a server more than 17 ms
# after its SIGTERM. Kubernetes manifests set a longer one, to cover the endpoint update too.
DEFAULT_DRAIN_DELAY = 1.0


def _error_code(env: Env) -> str:
    value = env.string("FAULT_ERROR_CODE", "UNAVAILABLE")
    if value.upper() not in ERROR_CODES:
        raise ConfigError(
            "FAULT_ERROR_CODE", value, "a gRPC status code other than OK: " + ", ".join(ERROR_CODES)
        )
    return value.upper()


@dataclass(frozen=True)
class ServerConfig:
    server_id: str
    bind_address: str
    port: int
    work_time: float
    max_connection_age: float | None
    max_connection_age_grace: float | None
    drain_delay: float
    shutdown_grace: float
    faults: Faults
    orca_reports: bool
    pod_ip: str
    node_name: str
    scenario: str
    log_level: str
    log_format: str

    @property
    def listen_target(self) -> str:
        """The address in grpc's notation: ``host:port``, IPv6 in brackets."""
        host = self.bind_address
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def public_address(self) -> str:
        """Where clients reach this server: when bound to all interfaces, the pod IP, else
        the host name."""
        host = self.bind_address
        if host in ("0.0.0.0", "::"):
            host = self.pod_ip or socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    def as_log_fields(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerConfig:
        env = Env(os.environ if environ is None else environ)
        bind = env.string("BIND_ADDRESS", "0.0.0.0")
        try:
            ip_address(bind)
        except ValueError:
            raise ConfigError(
                "BIND_ADDRESS", bind, "an IPv4 or IPv6 address such as 0.0.0.0 or 127.0.0.2"
            ) from None
        age = env.optional_duration("MAX_CONNECTION_AGE", minimum=0.001)
        grace = env.optional_duration("MAX_CONNECTION_AGE_GRACE")
        return cls(
            server_id=env.first(("SERVER_ID", "POD_NAME"), socket.gethostname()),
            bind_address=bind,
            port=env.integer("PORT", 50051, minimum=1, maximum=65535),
            work_time=env.duration("WORK_TIME", 0.2),
            max_connection_age=age,
            max_connection_age_grace=grace,
            drain_delay=env.duration("DRAIN_DELAY", DEFAULT_DRAIN_DELAY),
            shutdown_grace=env.duration("SHUTDOWN_GRACE", 10.0),
            faults=Faults(
                latency=env.duration("FAULT_LATENCY", 0.0),
                error_rate=env.number("FAULT_ERROR_RATE", 0.0, minimum=0, maximum=1),
                error_code=_error_code(env),
            ),
            # Off unless a balancer reads the reports (grpc's weighted_round_robin, Envoy's
            # client-side WRR): building and sending one costs CPU on every call.
            orca_reports=env.boolean("ORCA_REPORTS", False),
            pod_ip=env.string("POD_IP", ""),
            node_name=env.string("NODE_NAME", ""),
            scenario=env.string("SCENARIO", ""),
            log_level=env.choice("LOG_LEVEL", "info", LEVELS),
            log_format=env.choice("LOG_FORMAT", "auto", FORMATS),
        )
