"""What a gRPC client needs to find the control plane: its xDS bootstrap.

The gRPC bootstrap (gRFC A27, A47) names the ADS server, insecure credentials, ``xds_v3``, and the
node identity the control plane logs; give it to a client as ``GRPC_XDS_BOOTSTRAP`` (a file) or
``GRPC_XDS_BOOTSTRAP_CONFIG`` (the JSON itself). The same shape works with wongnai/xds on a
cluster, where only ``server_uri`` differs.

(The tests run Envoy as an ADS client of the same control plane too: their bootstrap is in
``lab/tests/conftest.py``.)
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
