"""Shared helpers for the lab's tests."""

import os
from pathlib import Path
from typing import Any

import pytest
from hellolb_lab import overlay

REPO = Path(__file__).resolve().parents[2]

#: Second octet of the loopback blocks the tests run labs on. It differs between test sessions
#: (unless set), so two test runs on one machine do not fight over addresses.
OCTET = int(os.environ.get("HELLOLB_LAB_TEST_OCTET", 100 + os.getpid() % 150))


@pytest.fixture(scope="session")
def k8s_dir() -> Path:
    return REPO / "k8s"


@pytest.fixture(scope="session")
def lab_net():
    """``lab_net(n)`` is the ``127.X.n`` block for one test's lab."""
    return lambda n: f"127.{OCTET}.{n}"


@pytest.fixture(scope="session")
def overlay_of(k8s_dir):
    """A scenario's overlay as the lab and the cluster check read it (rendered once)."""
    rendered: dict[str, overlay.Overlay] = {}

    def load(name: str) -> overlay.Overlay:
        if name not in rendered:
            rendered[name] = overlay.load(name, k8s_dir)
        return rendered[name]

    return load


@pytest.fixture(scope="session")
def envoy_bootstrap():
    """``envoy_bootstrap(node_id=..., xds=..., listen=..., admin=..., route_name=...)``: Envoy
    as an ADS client of the lab's control plane: clusters by CDS and endpoints by EDS over one
    ADS stream, and one HTTP/2 listener whose routes come by RDS, the way a proxy or a sidecar
    in front of gRPC servers would take them."""
    return _envoy_bootstrap


def _socket(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _envoy_bootstrap(
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
