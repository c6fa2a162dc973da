"""What a client needs to find the control plane: a gRPC xDS bootstrap, or an Envoy bootstrap.

The gRPC bootstrap (gRFC A27, A47) names the ADS server, insecure credentials, ``xds_v3``, and the
node identity the control plane logs; give it to a client as ``GRPC_XDS_BOOTSTRAP`` (a file) or
``GRPC_XDS_BOOTSTRAP_CONFIG`` (the JSON itself). The same shape works with wongnai/xds on a
cluster, where only ``server_uri`` differs.

The Envoy bootstrap runs Envoy as an ADS client of the same control plane: clusters by CDS and
endpoints by EDS over one ADS stream, and one HTTP/2 listener whose routes come by RDS, the way a
proxy or a sidecar in front of gRPC servers would take them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def grpc_bootstrap(
    server: str, node_id: str, *, authorities: Iterable[str] = (), zone: str = "lab"
) -> dict[str, Any]:
    """The bootstrap for a gRPC client of the control plane at ``server`` (``HOST:PORT``).

    Each name in ``authorities`` is served by the same control plane, for ``xds://NAME/...``
    targets.
    """
    xds_server = {
        "server_uri": server,
        "channel_creds": [{"type": "insecure"}],
        "server_features": ["xds_v3"],
    }
    config: dict[str, Any] = {
        "xds_servers": [xds_server],
        "node": {"id": node_id, "locality": {"zone": zone}},
    }
    names = list(authorities)
    if names:
        config["authorities"] = {name: {"xds_servers": [xds_server]} for name in names}
    return config


def grpc_bootstrap_json(server: str, node_id: str, **kwargs: Any) -> str:
    return json.dumps(grpc_bootstrap(server, node_id, **kwargs))


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def envoy_bootstrap(
    *,
    node_id: str,
    xds: tuple[str, int],
    listen: tuple[str, int],
    admin: tuple[str, int],
    route_name: str,
) -> dict[str, Any]:
    """Envoy as an ADS client: CDS and EDS over ADS, a listener on ``listen`` using RDS
    ``route_name`` (a listener name of the control plane, e.g. ``server.lab:50051``)."""
    ads = {"ads": {}, "resource_api_version": "V3"}
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
        ".v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "codec_type": "HTTP2",
        "rds": {"config_source": ads, "route_config_name": route_name},
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return {
        "node": {"id": node_id, "cluster": "lab"},
        "admin": {"address": _socket(*admin)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}],
            },
            "cds_config": ads,
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": _socket(*listen),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "xds",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3"
                            ".HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": "xds",
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(*xds)}}]}],
                    },
                }
            ],
        },
    }
