"""The xds scenario on a cluster: the client's bootstrap, its target, and the control plane
(wongnai/xds) that connects them, checked on the rendered overlay; and the documented look at
the control plane's debug page, run on a snapshot shaped as that page serves it.

What the control plane does with the cluster's objects is taken from its source
(github.com/wongnai/xds, snapshot/services.go and snapshot/endpoints.go): per Service port it
publishes the listener ``<service>.<namespace>:<port number>``, which routes to the cluster
``<service>.<namespace>:<port name>``, whose endpoints come from the Endpoints object's port of
that name. :func:`published_listeners` restates that rule, so the checks below fail when the
client asks for a listener that nothing would publish.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import json_format
from hello_client.config import ClientConfig
from hellolb.config import ConfigError

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
_spec = importlib.util.spec_from_file_location("doc_commands", ROOT / "tests" / "doc_commands.py")
assert _spec is not None
assert _spec.loader is not None
doc_commands = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = doc_commands
_spec.loader.exec_module(doc_commands)
SCENARIO = "xds"
NAMESPACE = "grpc-lb-xds"
#: Kind's cluster domain: a Service's full name is <name>.<namespace>.svc.<domain>.
CLUSTER_DOMAIN = "cluster.local"
#: The port the control plane's binary listens on for ADS (main.go: net.Listen ":5000").
ADS_PORT = 5000
#: Its debug server: /metrics and the snapshot as JSON on / (debug/server.go).
DEBUG_PORT = 9000
#: The image's `USER 1000` (its Dockerfile).
IMAGE_USER = 1000
#: The label each overlay names its scenario by (k8s/components/scenario).
SCENARIO_LABEL = "grpc-lb-lab/scenario"
XDS_TARGET = re.compile(
    r"^xds:///(?P<service>[a-z0-9-]+)\.(?P<namespace>[a-z0-9-]+):(?P<port>\d+)$"
)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name
    ]
    return found


def selects(service: dict[str, Any], deployment: dict[str, Any]) -> bool:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"].get("selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def target_port(service_port: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
    """The container port a Service port sends to, by name or by number."""
    wanted = service_port.get("targetPort", service_port["port"])
    ports = [p for c in pod["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])]
    key = "name" if isinstance(wanted, str) else "containerPort"
    (found,) = [p for p in ports if p.get(key) == wanted]
    return found


# -- the bootstrap


def bootstrap_map(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "xds-bootstrap"
    ]
    return found


def bootstrap(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return json.loads(bootstrap_map(docs)["data"]["bootstrap.json"])


def client_config(docs: list[dict[str, Any]], doc, tmp_path: Path) -> ClientConfig:
    """The client's own configuration, read as it reads it in its pod: its environment from the
    overlay, and the bootstrap file the ConfigMap mounts (here in a temporary folder)."""
    path = tmp_path / "bootstrap.json"
    path.write_text(bootstrap_map(docs)["data"]["bootstrap.json"])
    env = env_of(container(doc(docs, "Deployment", "client"), "client"))
    return ClientConfig.from_env({**env, "GRPC_XDS_BOOTSTRAP": str(path)})


def test_the_client_accepts_the_bootstrap_and_names_the_control_plane(docs_of, doc, tmp_path):
    settings = client_config(docs_of(SCENARIO), doc, tmp_path).xds
    assert settings is not None
    assert settings.servers == (f"xds.{NAMESPACE}.svc.{CLUSTER_DOMAIN}:{ADS_PORT}",)
    assert settings.listener == f"server.{NAMESPACE}:50051"
    assert settings.node_id, "a node id, so that a control plane's logs can tell clients apart"


def test_the_client_refuses_the_bootstrap_without_its_servers(docs_of, doc, tmp_path):
    # The same check, failing: proof that the test above reads the ConfigMap's content.
    docs = json.loads(json.dumps(docs_of(SCENARIO)))
    broken = bootstrap(docs)
    broken["xds_servers"] = []
    bootstrap_map(docs)["data"]["bootstrap.json"] = json.dumps(broken)
    with pytest.raises(ConfigError, match="GRPC_XDS_BOOTSTRAP"):
        client_config(docs, doc, tmp_path)


def test_the_bootstrap_asks_for_xds_v3(docs_of):
    # The server feature of gRFC A27 that says the server speaks xDS v3, the only version
    # wongnai/xds serves. Current gRPC speaks v3 anyway; older releases needed it to.
    for server in bootstrap(docs_of(SCENARIO))["xds_servers"]:
        assert "xds_v3" in server["server_features"]


def test_the_bootstrap_names_the_control_planes_service_and_ads_port(docs_of, doc):
    docs = docs_of(SCENARIO)
    (server,) = bootstrap(docs)["xds_servers"]
    host, _, port = server["server_uri"].rpartition(":")
    name, namespace, svc, domain = host.split(".", 3)
    assert (namespace, svc, domain) == (NAMESPACE, "svc", CLUSTER_DOMAIN)
    service = doc(docs, "Service", name)
    (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
    control_plane = doc(docs, "Deployment", name)
    assert selects(service, control_plane)
    assert target_port(service_port, control_plane)["containerPort"] == ADS_PORT
    assert server["channel_creds"] == [{"type": "insecure"}]


def test_the_client_reads_the_bootstrap_file_from_the_config_map(docs_of, doc):
    docs = docs_of(SCENARIO)
    client = doc(docs, "Deployment", "client")
    main = container(client, "client")
    path = Path(env_of(main)["GRPC_XDS_BOOTSTRAP"])
    # One source only: gRPC reads GRPC_XDS_BOOTSTRAP first and never looks at the inline JSON.
    assert "GRPC_XDS_BOOTSTRAP_CONFIG" not in env_of(main)
    (mount,) = [m for m in main["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in client["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mount["name"]]["configMap"]["name"] == "xds-bootstrap"
    assert path.name in bootstrap_map(docs)["data"]


def test_the_bootstrap_file_of_the_overlay_is_what_the_config_map_holds(docs_of):
    text = (K8S / "overlays" / SCENARIO / "bootstrap.json").read_text()
    assert bootstrap_map(docs_of(SCENARIO))["data"]["bootstrap.json"] == text


# -- the client's target and what the control plane publishes


def published_listeners(docs: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Listener name -> (Service, port name), for every Service port as wongnai/xds names it."""
    listeners = {}
    for d in docs:
        if d["kind"] == "Service":
            full = f"{d['metadata']['name']}.{d['metadata']['namespace']}"
            for port in d["spec"]["ports"]:
                listeners[f"{full}:{port['port']}"] = (d["metadata"]["name"], port.get("name", ""))
    return listeners


def test_the_client_asks_for_a_listener_the_control_plane_publishes(docs_of, doc):
    docs = docs_of(SCENARIO)
    target = env_of(container(doc(docs, "Deployment", "client"), "client"))["SERVER_ADDRESS"]
    match = XDS_TARGET.match(target)
    assert match, target
    assert match["namespace"] == NAMESPACE
    listener = target.removeprefix("xds:///")
    assert listener in published_listeners(docs)


def test_the_listener_leads_to_the_servers_through_a_named_port(docs_of, doc):
    docs = docs_of(SCENARIO)
    target = env_of(container(doc(docs, "Deployment", "client"), "client"))["SERVER_ADDRESS"]
    service_name, port_name = published_listeners(docs)[target.removeprefix("xds:///")]
    # The cluster is named after the port's name and its endpoints after the Endpoints port's
    # name; an unnamed port gives two different names and the client gets no endpoints.
    assert port_name, "the server Service's port needs a name"
    service = doc(docs, "Service", service_name)
    servers = doc(docs, "Deployment", "server")
    assert selects(service, servers)
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == port_name]
    assert target_port(port, servers)["containerPort"] == int(
        env_of(container(servers, "server"))["PORT"]
    )


def test_the_servers_are_the_base_servers(docs_of, doc):
    """Nothing about leaving, draining or probing changes for xDS: the control plane drops a
    server from EDS when Kubernetes drops it from the Endpoints' ready addresses."""

    def without_scenario(deployment: dict[str, Any]) -> dict[str, Any]:
        copy = json.loads(json.dumps(deployment))
        copy["metadata"].pop("namespace")
        for metadata in (copy["metadata"], copy["spec"]["template"]["metadata"]):
            metadata["labels"].pop(SCENARIO_LABEL)
        return copy

    xds = without_scenario(doc(docs_of(SCENARIO), "Deployment", "server"))
    assert xds == without_scenario(doc(docs_of("clusterip"), "Deployment", "server"))


# -- the control plane's access to the API


def test_the_control_plane_may_only_read_services_and_endpoints(docs_of):
    docs = docs_of(SCENARIO)
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert not [d for d in docs if d["kind"] == "Role"]
    resources = set()
    for rule in role["rules"]:
        assert rule["apiGroups"] == [""], rule
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
        assert "*" not in rule["resources"], rule
        resources |= set(rule["resources"])
    assert resources == {"services", "endpoints"}


def test_the_binding_grants_the_role_to_the_control_planes_own_account(docs_of, doc):
    docs = docs_of(SCENARIO)
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    spec = doc(docs, "Deployment", "xds")["spec"]["template"]["spec"]
    account = doc(docs, "ServiceAccount", spec["serviceAccountName"])
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert spec["automountServiceAccountToken"] is True


def test_the_binding_follows_the_namespace_of_whichever_overlay_uses_the_component(
    tmp_path, kustomize_dir
):
    # Kustomize's namespace transformer rewrites a ServiceAccount subject only when its
    # namespace is `default`: the component relies on that, so prove it with the real tool.
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    to_k8s = Path(os.path.relpath(K8S, overlay))
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "namespace": "grpc-lb-elsewhere",
                "resources": [str(to_k8s / "base")],
                "components": [str(to_k8s / "components" / "xds")],
            }
        )
    )
    docs = [d for d in yaml.safe_load_all(kustomize_dir(overlay)) if d]
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert [s["namespace"] for s in binding["subjects"]] == ["grpc-lb-elsewhere"]


# -- the control plane's pod


def test_the_control_plane_runs_its_image_as_built(docs_of, doc):
    deployment = doc(docs_of(SCENARIO), "Deployment", "xds")
    spec = deployment["spec"]["template"]["spec"]
    xds = container(deployment, "xds")
    assert re.fullmatch(r"ghcr\.io/wongnai/xds:v\d+\.\d+\.\d+", xds["image"])
    # The binary's path in the image changed between releases: keep the image's own CMD.
    assert "command" not in xds
    assert "args" not in xds
    assert (
        xds.get("securityContext", {}).get("runAsUser", spec["securityContext"]["runAsUser"])
        == IMAGE_USER
    )
    assert xds["securityContext"]["readOnlyRootFilesystem"] is True
    ports = {p["name"]: p["containerPort"] for p in xds["ports"]}
    assert ports == {"grpc": ADS_PORT, "debug": DEBUG_PORT}


def test_the_control_plane_is_probed_over_its_grpc_health_service(docs_of, doc):
    xds = container(doc(docs_of(SCENARIO), "Deployment", "xds"), "xds")
    for probe in ("readinessProbe", "livenessProbe"):
        assert xds[probe]["grpc"] == {"port": ADS_PORT}, probe


def test_the_go_runtime_is_sized_to_the_cpu_limit(docs_of, doc):
    xds = container(doc(docs_of(SCENARIO), "Deployment", "xds"), "xds")
    (gomaxprocs,) = [e for e in xds["env"] if e["name"] == "GOMAXPROCS"]
    assert gomaxprocs["valueFrom"] == {"resourceFieldRef": {"resource": "limits.cpu"}}
    assert "cpu" in xds["resources"]["limits"]


def test_a_new_control_plane_is_ready_before_the_old_one_stops(docs_of, doc):
    deployment = doc(docs_of(SCENARIO), "Deployment", "xds")
    assert deployment["spec"]["replicas"] == 1
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert (rolling["maxSurge"], rolling["maxUnavailable"]) == (1, 0)


def test_only_the_xds_scenario_runs_a_control_plane(scenario, docs_of):
    names = {d["metadata"]["name"] for d in docs_of(scenario) if d["kind"] == "Deployment"}
    has_bootstrap = any(
        d["kind"] == "ConfigMap" and d["metadata"]["name"] == "xds-bootstrap"
        for d in docs_of(scenario)
    )
    assert ("xds" in names) is (scenario == SCENARIO)
    assert has_bootstrap is (scenario == SCENARIO)


# -- the documented look at the control plane's debug page


def debug_snapshot(docs: list[dict[str, Any]], pods: dict[str, str]) -> dict[str, Any]:
    """What wongnai/xds serves on its debug page (debug/marshaler.go): per cache ("services",
    "endpoints"), per node id (only ""), per type URL, a version and the resources by name,
    each in protobuf's JSON mapping. Here the server Service's endpoints, with ``pods`` (pod
    name -> IP) as the Endpoints' ready addresses, named as snapshot/endpoints.go names them."""
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "server")
    (port,) = service["spec"]["ports"]
    name = f"server.{service['metadata']['namespace']}:{port['name']}"
    assignment = endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(
                            address=address_pb2.Address(
                                socket_address=address_pb2.SocketAddress(
                                    address=ip, port_value=port["port"]
                                )
                            ),
                            hostname=f"{pod}.{service['metadata']['namespace']}",
                        )
                    )
                    for pod, ip in pods.items()
                ]
            )
        ],
    )
    type_url = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    items = {name: json_format.MessageToDict(assignment)}
    return {"endpoints": {"": {type_url: {"version": "7", "items": items}}}, "services": {"": {}}}


def test_the_documented_jq_lists_the_pods_the_control_plane_serves(docs_of, tmp_path):
    jq = shutil.which("jq")
    if jq is None:
        pytest.skip("jq is not installed (Debian package `jq`)")
    (command,) = [c for c in doc_commands.jq_commands(ROOT) if "snapshot.json" in c.argv]
    pods = {"server-7b9c6d-x7k2q": "10.244.1.7", "server-7b9c6d-m9c1d": "10.244.2.4"}
    snapshot = tmp_path / "snapshot.json"
    snapshot.write_text(json.dumps(debug_snapshot(docs_of(SCENARIO), pods)))
    argv = [jq, *(str(snapshot) if a == "snapshot.json" else a for a in command.argv[1:])]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    shown = [line.split() for line in result.stdout.splitlines()]
    assert shown == [[f"{pod}.{NAMESPACE}", ip] for pod, ip in pods.items()]
