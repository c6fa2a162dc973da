"""The lab's xDS control plane, planned: where it listens, the listener it serves from which
zone name and port, and the bootstrap each client gets (the overlay's, pointed at it).

It stands in for the cluster's: it serves the listener the client asks for
(``<service>.<namespace>:<port>``, as wongnai/xds names a Service port) with the addresses of the
Service's Endpoints, and each client gets the overlay's bootstrap, pointed at the lab's control
plane and naming the client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hello_client.xds import BOOTSTRAP_CONFIG, BOOTSTRAP_FILE, xds_settings
from hellolb.config import ConfigError

from hellolb_lab import overlay as overlays
from hellolb_lab.errors import LabError
from hellolb_lab.front import Front, Target
from hellolb_lab.options import Options
from hellolb_lab.xds import launch


def endpoints_name(namespace: str) -> str:
    """The zone name that lists the server Service's Endpoints in ``namespace``."""
    return f"endpoints.server.{namespace}.lab"


@dataclass(frozen=True)
class ControlPlane:
    """The lab's xDS control plane: its address, the listener it serves from which zone name
    and port, and the bootstrap its clients get (the overlay's, pointed at ``address``)."""

    address: tuple[str, int]
    listener: str
    zone_name: str
    port: int
    bootstrap: Mapping[str, Any]

    @property
    def service(self) -> str:
        """The control plane's ``--service`` argument."""
        return f"{self.listener}={self.zone_name}:{self.port}"

    def argv(self, zone: Path) -> list[str]:
        return launch.control_plane_argv(self.address, zone, [self.service])

    def client_bootstrap(self, client: str) -> dict[str, Any]:
        """The bootstrap of one client. The node id is the client's name, so that the control
        plane's log tells the clients apart; on a cluster every client pod sends the same id,
        and wongnai/xds answers every node alike."""
        bootstrap = json.loads(json.dumps(self.bootstrap))
        bootstrap["node"] = {**(bootstrap.get("node") or {}), "id": client}
        return bootstrap


def plan_control_plane(
    name: str,
    ov: overlays.Overlay,
    target: Target,
    client_env: Mapping[str, str],
    server_port: int,
    options: Options,
) -> ControlPlane | None:
    """The lab's control plane for an ``xds:`` target, from the client's bootstrap: the
    ConfigMap file ``GRPC_XDS_BOOTSTRAP`` names, or the JSON in ``GRPC_XDS_BOOTSTRAP_CONFIG``.
    It listens on the lab's control-plane address, on the port of the bootstrap's first server,
    and serves the servers on the port they listen on (the Service's target port).
    """
    if target.front is not Front.CONTROL_PLANE:
        return None
    if BOOTSTRAP_FILE in client_env:
        path = client_env[BOOTSTRAP_FILE]
        if path not in ov.client_files:
            raise LabError(
                f"{name}: the client's {BOOTSTRAP_FILE}={path} is no file the overlay mounts "
                f"from a ConfigMap (mounted: {', '.join(sorted(ov.client_files)) or 'none'})"
            )
        text = ov.client_files[path]
    else:
        text = client_env.get(BOOTSTRAP_CONFIG, "")
    try:
        settings = xds_settings(target.address, {BOOTSTRAP_CONFIG: text})
    except ConfigError as error:
        raise LabError(f"{name}: the overlay's xDS bootstrap: {error}") from None
    assert settings is not None
    _, _, port = settings.servers[0].rpartition(":")
    if not port.isdigit():
        raise LabError(f"{name}: the bootstrap's server_uri {settings.servers[0]!r} has no port")
    address = (options.net.control_plane, int(port))
    bootstrap = json.loads(text)
    for server in _xds_servers(bootstrap):
        server["server_uri"] = f"{address[0]}:{address[1]}"
    return ControlPlane(
        address=address,
        listener=settings.listener,
        zone_name=endpoints_name(ov.namespace),
        port=server_port,
        bootstrap=bootstrap,
    )


def _xds_servers(bootstrap: dict[str, Any]) -> list[dict[str, Any]]:
    """Every server entry of a bootstrap: the top-level ones and each authority's."""
    authorities = (bootstrap.get("authorities") or {}).values()
    return [*bootstrap["xds_servers"], *(s for a in authorities for s in a.get("xds_servers", []))]
