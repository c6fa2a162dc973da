"""The xds scenario's gRPC xDS bootstrap (k8s/overlays/xds/bootstrap.json) works for every gRPC
implementation that speaks xDS, not only the project's Python client.

Two checks:

- the rules of the bootstrap format (gRFC A27, grpc/proposal ``A27-xds-global-load-balancing.md``)
  as each implementation's parser applies them: grpc-go ``internal/xds/bootstrap/bootstrap.go``,
  grpc-java ``xds/src/main/java/io/grpc/xds/client/BootstrapperImpl.java`` (and
  ``GrpcBootstrapperImpl.java`` for the credentials), grpc-node
  ``packages/grpc-js-xds/src/xds-bootstrap.ts``. The strictest rule wins: grpc-js-xds refuses a
  ``node`` without ``locality``, which the others accept.
- a real Node.js client, ``@grpc/grpc-js-xds`` from npm (``tests/xds-node``, pinned in its
  lock file), given this bootstrap with only ``server_uri`` pointed at the lab's xDS control plane
  (real ADS, ``hellolb_lab.xds``), calls real hello_server processes on loopback. It skips, and
  says how to install it, when ``node`` or the npm packages are missing.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2 as node_pb2_module
from google.protobuf import json_format
from hellolb_lab import launchers
from hellolb_lab.dns import Zone
from hellolb_lab.procs import Supervisor, free_port
from hellolb_lab.xds import launch
from hellolb_lab.xds.bootstrap import grpc_bootstrap

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "k8s" / "overlays" / "xds" / "bootstrap.json"
NODE_CHECK = ROOT / "tests" / "xds-node"
#: Channel credentials every implementation supports (grpc-node's SUPPORTED_CHANNEL_CREDS_TYPES;
#: grpc-go and grpc-java register these and `tls`).
COMMON_CREDS = {"insecure", "google_default"}
LOCALITY_KEYS = {"region", "zone", "sub_zone"}
#: The listener the overlay's client targets, and the port its servers listen on.
LISTENER = "server.grpc-lb-xds:50051"
PORT = 50051
#: Loopback block of this test's servers: apart from the lab tests' 127.X.1xx blocks, and
#: different between test sessions.
BLOCK = f"127.{int(os.environ.get('HELLOLB_LAB_TEST_OCTET', 100 + os.getpid() % 150))}.231"
#: Start-up waits, and each call's deadline in the Node client (5 s, far above a loopback
#: call): bounds a busy 2-core machine keeps (the whole Node test took 12 to 39 s there).
WAIT_S = 20.0


def problems(bootstrap: Any) -> list[str]:
    """What some gRPC implementation refuses in ``bootstrap``; empty when all accept it."""
    found = []
    if not isinstance(bootstrap, dict):
        return ["the bootstrap is not a JSON object (all)"]
    servers = bootstrap.get("xds_servers")
    if not isinstance(servers, list) or not servers:
        found.append("xds_servers must be a non-empty list (A27; go, java, node)")
        servers = []
    for i, server in enumerate(servers):
        if not isinstance(server, dict):
            found.append(f"xds_servers[{i}] is not an object (go, java, node)")
            continue
        uri = server.get("server_uri")
        if not isinstance(uri, str) or not uri:
            found.append(f"xds_servers[{i}].server_uri must be a non-empty string (go, java, node)")
        creds = server.get("channel_creds")
        if not isinstance(creds, list) or not all(
            isinstance(c, dict) and isinstance(c.get("type"), str) for c in creds
        ):
            found.append(f"xds_servers[{i}].channel_creds must list objects with a type (node)")
        elif not COMMON_CREDS & {c["type"] for c in creds}:
            found.append(f"xds_servers[{i}].channel_creds: none of {sorted(COMMON_CREDS)} (all)")
        else:
            for c in creds:
                if "config" in c and not isinstance(c["config"], dict):
                    found.append(f"xds_servers[{i}].channel_creds config must be an object (node)")
        features = server.get("server_features", [])
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            found.append(f"xds_servers[{i}].server_features must list strings (java, node)")
    node = bootstrap.get("node")
    if not isinstance(node, dict):
        found.append("node must be an object (node: it reads node.id and node.locality)")
        return found
    if not isinstance(node.get("id"), str):
        found.append("node.id must be a string (node; go and java read it as one)")
    if "locality" not in node:
        found.append("node.locality is missing: 'locality field missing in node element' (node)")
    elif not isinstance(node["locality"], dict):
        found.append("node.locality must be an object (go, java, node)")
    else:
        for key in LOCALITY_KEYS & set(node["locality"]):
            if not isinstance(node["locality"][key], str):
                found.append(f"node.locality.{key} must be a string (java, node)")
    if "cluster" in node and not isinstance(node["cluster"], str):
        found.append("node.cluster must be a string (java, node)")
    if "metadata" in node and not isinstance(node["metadata"], dict):
        found.append("node.metadata must be an object (java; A27: a Struct)")
    # A27: `node` is the JSON form of xDS's Node proto, without `build_version` (the client
    # fills in its own version). Checked with the real proto (xds-protos).
    try:
        json_format.ParseDict(node, node_pb2_module.Node(), ignore_unknown_fields=True)
    except json_format.ParseError as error:
        found.append(f"node is not the JSON form of the Node proto: {error} (A27)")
    for own in ("build_version", "user_agent_name", "user_agent_version"):
        if own in node:
            found.append(f"node.{own} is the client's to fill in (A27)")
    return found


def overlay_bootstrap(docs_of) -> dict[str, Any]:
    """The bootstrap the client's pod mounts: the rendered ConfigMap's, not only the file."""
    (config_map,) = [
        d
        for d in docs_of("xds")
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "xds-bootstrap"
    ]
    found = json.loads(config_map["data"]["bootstrap.json"])
    assert found == json.loads(BOOTSTRAP.read_text())
    return found


def test_every_implementation_accepts_the_overlays_bootstrap(docs_of):
    assert problems(overlay_bootstrap(docs_of)) == []


def test_the_labs_bootstrap_follows_the_same_rules():
    assert problems(grpc_bootstrap("127.0.0.1:18000", "lab-client")) == []


def drop_locality(b: dict[str, Any]) -> None:
    b["node"].pop("locality")


def number_zone(b: dict[str, Any]) -> None:
    b["node"]["locality"] = {"zone": 1}


def drop_id(b: dict[str, Any]) -> None:
    b["node"].pop("id")


def tls_only(b: dict[str, Any]) -> None:
    b["xds_servers"][0]["channel_creds"] = [{"type": "tls"}]


def drop_server_uri(b: dict[str, Any]) -> None:
    b["xds_servers"][0].pop("server_uri")


def own_build_version(b: dict[str, Any]) -> None:
    b["node"]["build_version"] = "hellolb"


def listed_metadata(b: dict[str, Any]) -> None:
    b["node"]["locality"] = {"zone": "a", "sub_zone": "b"}
    b["node"]["metadata"] = ["not", "a", "struct"]


#: Each broken bootstrap, what the rules say, and whether grpc-js-xds's own parser refuses it
#: (the others it accepts and fails on later, when it dials, or not at all).
BROKEN = [
    (drop_locality, "locality field missing", True),
    (number_zone, "node.locality.zone", True),
    (drop_id, "node.id", True),
    (tls_only, "none of", True),
    (drop_server_uri, "server_uri", True),
    (own_build_version, "node.build_version", False),
    (listed_metadata, "Node proto", False),
]


@pytest.mark.parametrize(("change", "refused_by", "by_node"), BROKEN)
def test_the_rules_refuse_what_a_parser_refuses(docs_of, change, refused_by, by_node):
    broken = copy.deepcopy(overlay_bootstrap(docs_of))
    change(broken)
    assert any(refused_by in p for p in problems(broken)), problems(broken)


def test_grpc_js_xds_parser_agrees_with_the_rules(docs_of, tmp_path):
    # grpc-js-xds's own validateBootstrapConfig, on the overlay's bootstrap and on each broken
    # one, in one Node process.
    node, _ = node_client()
    cases = [(None, False)] + [(change, by_node) for change, _, by_node in BROKEN]
    paths = []
    for i, (change, _) in enumerate(cases):
        bootstrap = copy.deepcopy(overlay_bootstrap(docs_of))
        if change is not None:
            change(bootstrap)
        paths.append(tmp_path / f"bootstrap-{i}.json")
        paths[-1].write_text(json.dumps(bootstrap))
    result = subprocess.run(
        [node, str(NODE_CHECK / "validate.js"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=NODE_CHECK,
    )
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(verdicts) == len(cases), result.stdout + result.stderr
    for (change, by_node), verdict in zip(cases, verdicts, strict=True):
        assert ("error" in verdict) is by_node, (change, verdict)
    assert verdicts[1] == {"error": "locality field missing in node element"}


# -- a real grpc-js-xds client against the lab's control plane


def node_client() -> tuple[str, Path]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the grpc-js-xds check needs Node.js 18 or later")
    if not (NODE_CHECK / "node_modules" / "@grpc" / "grpc-js-xds").is_dir():
        pytest.skip(
            "@grpc/grpc-js-xds is not installed: run `npm ci --prefix tests/xds-node` "
            "(npm registry) to run a Node.js xDS client against the bootstrap"
        )
    return node, NODE_CHECK / "hello.js"


def call_with_node(bootstrap: dict[str, Any], tmp_path: Path, calls: int) -> dict[str, Any]:
    node, script = node_client()
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(bootstrap))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    result = subprocess.run(
        [node, str(script), f"xds:///{LISTENER}", str(ROOT / "protos"), str(calls), "5000"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**env, "GRPC_XDS_BOOTSTRAP": str(path)},
        cwd=NODE_CHECK,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the Node client:\n{result.stdout}\n{result.stderr}"
    return json.loads(lines[-1])


@pytest.fixture
def lab_control_plane(tmp_path):
    """The lab's xDS control plane publishing three hello_servers as the overlay's listener;
    yields the bootstrap's ``server_uri`` for it."""
    node_client()
    with Supervisor(tmp_path / "logs", stop_grace=5.0) as sup:
        zone = Zone(tmp_path / "zone.json")
        host = f"{BLOCK}.1"
        listen = (host, free_port(host))
        argv = launch.control_plane_argv(listen, zone.path, [f"{LISTENER}=server.lab"])
        launchers.start_control_plane(sup, "xds", argv, WAIT_S)
        ips = [f"{BLOCK}.{10 + i}" for i in (1, 2, 3)]
        servers = [(f"s{i}", launch.server_env(f"s{i}", ip, PORT)) for i, ip in enumerate(ips, 1)]
        launchers.start_servers(sup, servers, WAIT_S)
        zone.publish("server.lab", ips)
        yield f"{listen[0]}:{listen[1]}"


def test_a_node_grpc_js_xds_client_balances_over_every_server_with_the_bootstrap(
    docs_of, tmp_path, lab_control_plane
):
    bootstrap = copy.deepcopy(overlay_bootstrap(docs_of))
    (server,) = bootstrap["xds_servers"]
    server["server_uri"] = lab_control_plane  # the only change: where the control plane is
    result = call_with_node(bootstrap, tmp_path, calls=60)
    assert result.get("errors") == {}, result
    assert set(result["by_server"]) == {"s1", "s2", "s3"}, result
    assert sum(result["by_server"].values()) == 60
