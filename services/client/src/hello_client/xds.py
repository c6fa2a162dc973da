"""What an ``xds:`` target needs from the environment: a bootstrap gRPC can use.

With ``SERVER_ADDRESS=xds:///host:port`` gRPC asks the control plane named in its xDS bootstrap
for the listener ``host:port`` (gRFC A27); with ``xds://AUTHORITY/host:port``, the control plane
of that entry of the bootstrap's ``authorities`` (gRFC A47). gRPC reads the bootstrap itself,
from the file named by ``GRPC_XDS_BOOTSTRAP`` or else from the JSON in
``GRPC_XDS_BOOTSTRAP_CONFIG``, and when it is missing or wrong it only leaves the channel in
TRANSIENT_FAILURE: every call fails UNAVAILABLE until STARTUP_TIMEOUT. So the client checks the
bootstrap at start, as gRPC 1.85 would (the same variable first, an empty value counting as set,
the same required fields), and stops with a ``config.invalid`` line naming the variable instead.

The control plane, not the client, then decides the load-balancing policy and the endpoints:
the client's own service config is only a default that gRPC uses when the resolver gives none,
and the xDS resolver always gives one. LB_POLICY with its settings (WRR_*, OUTLIER_*) and
DNS_MIN_TIME_BETWEEN_RESOLUTIONS therefore do not apply (:data:`NOT_APPLIED`, logged in
``client.config``), nor does client-side health checking: gRPC stops sending calls to an
endpoint when the control plane withdraws it or marks it unhealthy in EDS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hellolb.config import ConfigError

from hello_client.target import split_xds

BOOTSTRAP_FILE = "GRPC_XDS_BOOTSTRAP"
BOOTSTRAP_CONFIG = "GRPC_XDS_BOOTSTRAP_CONFIG"

#: Client settings that an xDS control plane overrides.
NOT_APPLIED = (
    "LB_POLICY",
    "DNS_MIN_TIME_BETWEEN_RESOLUTIONS",
    "WRR_BLACKOUT_PERIOD",
    "WRR_WEIGHT_UPDATE_PERIOD",
    "WRR_ERROR_UTILIZATION_PENALTY",
    "OUTLIER_DETECTION",
    "OUTLIER_INTERVAL",
    "OUTLIER_EJECTION_TIME",
    "OUTLIER_FAILURE_PERCENTAGE",
    "OUTLIER_MIN_CALLS",
)

#: Channel credential types gRPC knows in a bootstrap; it needs at least one per server.
KNOWN_CREDS = ("insecure", "google_default", "tls")

_BOOTSTRAP_HELP = (
    'an xDS bootstrap: a JSON object with "xds_servers", a non-empty list of objects with '
    f'"server_uri" and "channel_creds" (one of type {", ".join(KNOWN_CREDS)})'
)


@dataclass(frozen=True)
class XdsSettings:
    """Where an ``xds:`` target's configuration comes from, as the client log shows it."""

    listener: str
    authority: str | None
    bootstrap: str
    bootstrap_file: str
    servers: tuple[str, ...]
    node_id: str
    not_applied: tuple[str, ...] = NOT_APPLIED


def _problem(document: Any, authority: str | None) -> str | None:
    """What is wrong with a parsed bootstrap, or None if gRPC can use it."""
    if not isinstance(document, dict):
        return "it is not a JSON object"
    servers = document.get("xds_servers")
    if not isinstance(servers, list) or not servers:
        return '"xds_servers" is missing or empty'
    for i, server in enumerate(servers):
        if not isinstance(server, dict) or not isinstance(server.get("server_uri"), str):
            return f'xds_servers[{i}] has no "server_uri"'
        if not server["server_uri"]:
            return f"xds_servers[{i}].server_uri is empty"
        creds = server.get("channel_creds")
        types = (
            [c.get("type") for c in creds if isinstance(c, dict)] if isinstance(creds, list) else []
        )
        if not any(t in KNOWN_CREDS for t in types):
            return f"xds_servers[{i}].channel_creds has no known type"
    if "node" in document and not isinstance(document["node"], dict):
        return '"node" is not an object'
    authorities = document.get("authorities", {})
    if not isinstance(authorities, dict):
        return '"authorities" is not an object'
    if authority is not None and authority not in authorities:
        return f'"authorities" has no entry {authority!r}, which SERVER_ADDRESS names'
    return None


def _read(environ: Mapping[str, str]) -> tuple[str, str, str]:
    """``(variable, its value, bootstrap text)``: the file first, as gRPC reads them."""
    if BOOTSTRAP_FILE in environ:
        path = environ[BOOTSTRAP_FILE]
        try:
            return BOOTSTRAP_FILE, path, Path(path).read_text()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise ConfigError(
                BOOTSTRAP_FILE,
                path,
                f"the path of a readable file holding {_BOOTSTRAP_HELP} (cannot read it: {reason})",
            ) from None
    if BOOTSTRAP_CONFIG in environ:
        text = environ[BOOTSTRAP_CONFIG]
        return BOOTSTRAP_CONFIG, text, text
    raise ConfigError(
        BOOTSTRAP_FILE,
        "",
        f"for an xds: SERVER_ADDRESS, the path of a file holding {_BOOTSTRAP_HELP}, "
        f"or the JSON itself in {BOOTSTRAP_CONFIG}",
    )


def xds_settings(target: str, environ: Mapping[str, str]) -> XdsSettings | None:
    """The checked xDS settings for ``target``; None if it is not an ``xds:`` target.

    Raises :class:`ConfigError` naming the bootstrap variable when gRPC could not use it.
    """
    parts = split_xds(target)
    if parts is None:
        return None
    authority, listener = parts
    variable, value, text = _read(environ)
    try:
        document = json.loads(text)
    except ValueError as error:
        problem: str | None = f"it is not JSON ({error})"
    else:
        problem = _problem(document, authority)
    if problem is not None:
        raise ConfigError(variable, value, f"{_BOOTSTRAP_HELP} ({problem})")
    node = document.get("node") or {}
    return XdsSettings(
        listener=listener,
        authority=authority,
        bootstrap=variable,
        bootstrap_file=value if variable == BOOTSTRAP_FILE else "",
        servers=tuple(s["server_uri"] for s in document["xds_servers"]),
        node_id=str(node.get("id", "")),
    )
