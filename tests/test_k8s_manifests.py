"""The Kustomize overlays: they render, validate against the Kubernetes schema, and say what
each scenario needs (Service kind, client target, env, Linkerd, hardening, probes)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from hellolb_lab import catalogue

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
EXPECTED_SCENARIOS = set(catalogue.names())
#: Validated against both ends of what Kind's current node images run (1.34 to 1.37).
KUBERNETES_VERSIONS = ("1.34.0", "1.37.0")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
#: The scenarios whose pods Linkerd meshes (the canary's route is applied by its proxies), as
#: the catalogue records them.
MESHED = {s.name for s in catalogue.SCENARIOS if s.meshed}
#: Kinds that belong to no namespace (the xds control plane's read-only access).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def seconds(text: str) -> float:
    match = DURATION.match(text)
    assert match, f"not a duration: {text!r}"
    return float(match.group(1)) * UNIT_S[match.group(2)]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def main_container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def all_containers(deployment: dict) -> list[dict]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def validate(tool, path: Path, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", version, "--quiet", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_one_overlay_per_scenario():
    overlays = {p.name for p in (K8S / "overlays").iterdir() if p.is_dir()}
    assert overlays == EXPECTED_SCENARIOS


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_overlay_renders_and_validates_strictly(scenario, version, render, tool, tmp_path):
    path = tmp_path / f"{scenario}.yaml"
    path.write_text(render(scenario))
    result = validate(tool, path, version)
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_rejects_an_unknown_field(render, tool, tmp_path):
    docs = [d for d in yaml.safe_load_all(render("headless")) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    assert validate(tool, path, KUBERNETES_VERSIONS[0]).returncode != 0


def test_kustomizations_use_current_fields_only():
    deprecated = {"bases", "patchesJson6902", "patchesStrategicMerge", "commonLabels", "vars"}
    for path in K8S.rglob("kustomization.yaml"):
        used = set(yaml.safe_load(path.read_text()))
        assert not used & deprecated, f"{path.relative_to(ROOT)} uses {used & deprecated}"


def test_overlays_are_thin(scenario):
    kustomization = yaml.safe_load((K8S / "overlays" / scenario / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../../base"]
    allowed = {"apiVersion", "kind", "namespace", "resources", "components", "patches"}
    allowed |= {"configMapGenerator", "labels"}
    assert set(kustomization) <= allowed


def test_everything_lives_in_the_scenario_namespace(scenario, docs_of):
    docs = docs_of(scenario)
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == [catalogue.namespace(scenario)]
    for d in docs:
        name = d["metadata"]["name"]
        if d["kind"] not in CLUSTER_SCOPED:
            assert d["metadata"]["namespace"] == catalogue.namespace(scenario), name
        else:
            assert "namespace" not in d["metadata"], name


def test_base_replicas_are_three_servers_and_one_client(scenario, docs_of, doc):
    docs = docs_of(scenario)
    assert doc(docs, "Deployment", "server")["spec"]["replicas"] == 3
    assert doc(docs, "Deployment", "client")["spec"]["replicas"] == 1


def test_every_client_and_server_container_names_its_scenario(scenario, docs_of, doc):
    docs = docs_of(scenario)
    for name in ("server", "client"):
        deployment = doc(docs, "Deployment", name)
        (ref,) = [e for e in main_container(deployment)["env"] if e["name"] == "SCENARIO"]
        path = ref["valueFrom"]["fieldRef"]["fieldPath"]
        label = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
        assert label, path
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels[label[1]] == scenario, name


def test_pods_get_name_ip_and_node_from_the_downward_api(scenario, docs_of, doc):
    docs = docs_of(scenario)
    wanted = {"POD_NAME": "metadata.name", "POD_IP": "status.podIP", "NODE_NAME": "spec.nodeName"}
    wanted["SCENARIO"] = "metadata.labels['grpc-lb-lab/scenario']"
    for name in ("server", "client"):
        env = main_container(doc(docs, "Deployment", name))["env"]
        got = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in env if "valueFrom" in e}
        assert got == wanted, name


SERVICE_CLUSTER_IP = {
    "clusterip": "ClusterIP",
    "headless": "None",
    "maxage": "None",
    "proxy": "None",
    "sidecar": "None",
    "linkerd": "ClusterIP",
    # The xds client never resolves the Service: the control plane reads its Endpoints.
    "xds": "ClusterIP",
    # Linkerd's proxy applies the route to calls for the Service's virtual address.
    "canary": "ClusterIP",
}
CLIENT_TARGET = {
    "clusterip": "dns:///server:50051",
    "headless": "dns:///server:50051",
    "maxage": "dns:///server:50051",
    "proxy": "dns:///proxy:50051",
    "sidecar": "ipv4:127.0.0.1:15001",
    "linkerd": "dns:///server:50051",
    "xds": "xds:///server.grpc-lb-xds:50051",
    "canary": "dns:///server:50051",
}


def test_server_service_is_headless_where_the_scenario_needs_every_pod(scenario, docs_of, doc):
    service = doc(docs_of(scenario), "Service", "server")
    expected = SERVICE_CLUSTER_IP[scenario]
    if expected == "None":
        assert service["spec"]["clusterIP"] == "None"
    else:
        assert "clusterIP" not in service["spec"]
        assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "grpc", "port": 50051, "targetPort": "grpc", "appProtocol": "kubernetes.io/h2c"}
    ]


def test_client_targets_what_the_scenario_balances_over(scenario, docs_of, doc):
    env = env_of(main_container(doc(docs_of(scenario), "Deployment", "client")))
    assert env["SERVER_ADDRESS"] == CLIENT_TARGET[scenario]
    assert env["LB_POLICY"] == "round_robin"


def test_only_maxage_limits_connection_age(scenario, docs_of, doc):
    docs = docs_of(scenario)
    server = env_of(main_container(doc(docs, "Deployment", "server")))
    client = env_of(main_container(doc(docs, "Deployment", "client")))
    if scenario != "maxage":
        assert "MAX_CONNECTION_AGE" not in server
    # A client that drops draining servers must look for their replacements soon
    # (components/client-health-check); no other client changes grpc's floor.
    if client["HEALTH_CHECK"] != "true":
        assert "DNS_MIN_TIME_BETWEEN_RESOLUTIONS" not in client


def test_maxage_shows_new_servers_within_a_minute(docs_of, doc):
    docs = docs_of("maxage")
    server = env_of(main_container(doc(docs, "Deployment", "server")))
    client = env_of(main_container(doc(docs, "Deployment", "client")))
    age = seconds(server["MAX_CONNECTION_AGE"])
    grace = seconds(server["MAX_CONNECTION_AGE_GRACE"])
    floor = seconds(client["DNS_MIN_TIME_BETWEEN_RESOLUTIONS"])
    assert (age, grace, floor) == (10.0, 5.0, 5.0)
    # The grace lets every call its caller still waits for finish; for a stream it is a hard
    # cut, so it also bounds how long a stream stays on the server it started on.
    assert grace >= seconds(client.get("RPC_TIMEOUT", "5s"))
    assert age * 1.1 + grace < 20
    # Worst case: a connection lives age * 1.1 (jitter), then re-resolution waits for the floor.
    assert age * 1.1 + floor < 60
    assert floor < age, "every GOAWAY wave must be allowed to re-resolve"


def test_linkerd_injects_client_and_server_only_in_its_scenario(scenario, docs_of, doc):
    docs = docs_of(scenario)
    for name in ("server", "client"):
        template = doc(docs, "Deployment", name)["spec"]["template"]
        annotations = template["metadata"].get("annotations", {})
        if scenario in MESHED:
            assert annotations.get("linkerd.io/inject") == "enabled", name
        else:
            assert "linkerd.io/inject" not in annotations, name


def test_pod_security_is_restricted_except_where_linkerd_needs_net_admin(scenario, docs_of, doc):
    namespace = doc(docs_of(scenario), "Namespace", catalogue.namespace(scenario))
    labels = namespace["metadata"]["labels"]
    expected = "privileged" if scenario in MESHED else "restricted"
    assert labels["pod-security.kubernetes.io/enforce"] == expected


def bound_service_accounts(docs: list[dict]) -> set[tuple[str, str]]:
    """(namespace, name) of every ServiceAccount that a RoleBinding or ClusterRoleBinding grants
    something to: the only accounts whose pods have a use for an API token."""
    bound = set()
    for d in docs:
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            for s in d.get("subjects", []):
                if s["kind"] == "ServiceAccount":
                    bound.add((s.get("namespace", d["metadata"].get("namespace")), s["name"]))
    return bound


def test_every_pod_is_hardened(scenario, docs_of):
    docs = docs_of(scenario)
    bound = bound_service_accounts(docs)
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        # A token only where the pod's account is granted API access (the xds control plane).
        account = (deployment["metadata"]["namespace"], spec["serviceAccountName"])
        assert spec["automountServiceAccountToken"] is (account in bound), name
        for c in all_containers(deployment):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
            assert "readOnlyRootFilesystem" in sc, c["name"]
            assert set(c["resources"]) == {"requests", "limits"}, c["name"]
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), c["name"]


def test_only_live_synced_containers_have_a_writable_root(scenario, docs_of):
    for deployment in (d for d in docs_of(scenario) if d["kind"] == "Deployment"):
        for c in all_containers(deployment):
            ours = c["image"].startswith("hellolb-")
            assert c["securityContext"]["readOnlyRootFilesystem"] is (not ours), c["name"]


def test_writable_root_is_explained_beside_the_setting():
    for name in ("server", "client"):
        text = (K8S / "base" / f"{name}.yaml").read_text()
        before = text.split("readOnlyRootFilesystem: false")[0].splitlines()[-4:]
        assert any("sync" in line.lower() for line in before if line.strip().startswith("#")), name


def test_our_images_run_their_own_entrypoint(scenario, docs_of):
    for deployment in (d for d in docs_of(scenario) if d["kind"] == "Deployment"):
        for c in all_containers(deployment):
            if c["image"].startswith("hellolb-"):
                assert "command" not in c, c["name"]
                assert "args" not in c, c["name"]


#: A pulled image, pinned to a release: ``registry/name:vX.Y.Z`` (never latest or a branch).
RELEASE_TAG = re.compile(r"^[a-z0-9./-]+:v\d+\.\d+\.\d+$")


def test_pulled_images_are_pinned_to_a_release_tag(scenario, docs_of):
    for deployment in (d for d in docs_of(scenario) if d["kind"] == "Deployment"):
        for c in all_containers(deployment):
            if not c["image"].startswith("hellolb-"):
                assert RELEASE_TAG.match(c["image"]), c["image"]
                assert c["imagePullPolicy"] == "IfNotPresent", c["name"]


def test_server_has_native_grpc_probes_on_its_named_port(scenario, docs_of, doc):
    server = main_container(doc(docs_of(scenario), "Deployment", "server"))
    assert server["ports"] == [{"name": "grpc", "containerPort": 50051, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert server[probe]["grpc"] == {"port": 50051}, probe


def test_termination_grace_exceeds_the_server_shutdown_grace(scenario, docs_of, doc):
    server = doc(docs_of(scenario), "Deployment", "server")
    grace = seconds(env_of(main_container(server))["SHUTDOWN_GRACE"])
    assert server["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace


def test_selectors_use_only_the_stable_name_label(scenario, docs_of):
    for d in docs_of(scenario):
        if d["kind"] == "Deployment":
            selector = d["spec"]["selector"]["matchLabels"]
            labels = d["spec"]["template"]["metadata"]["labels"]
        elif d["kind"] == "Service":
            selector = d["spec"]["selector"]
            labels = d["metadata"]["labels"]
        else:
            continue
        name = d["metadata"]["name"]
        if scenario == "canary" and name == "server" and d["kind"] == "Service":
            # The route's parent selects every backend pod (components/canary).
            assert selector == CANARY_PARENT_SELECTOR
            continue
        # The canary's stable backend selects the base's servers.
        app = {"server-stable": "server"}.get(name, name)
        assert selector == {"app.kubernetes.io/name": app}
        assert labels["app"] == app
        assert labels["app.kubernetes.io/part-of"] == "grpc-lb-lab"


CANARY_PARENT_SELECTOR = {
    "app.kubernetes.io/part-of": "grpc-lb-lab",
    "app.kubernetes.io/component": "backend",
}


def test_proxy_scenario_runs_one_central_envoy_behind_a_headless_service(docs_of, doc):
    docs = docs_of("proxy")
    proxy = doc(docs, "Deployment", "proxy")
    assert proxy["spec"]["replicas"] == 1
    service = doc(docs, "Service", "proxy")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"][0]["port"] == 50051
    envoy = main_container(proxy)
    assert {p["name"]: p["containerPort"] for p in envoy["ports"]} == {"grpc": 50051, "admin": 9901}
    assert envoy["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    volumes = proxy["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "envoy-config", "configMap": {"name": "envoy"}}]


def test_sidecar_scenario_runs_envoy_as_a_native_sidecar_of_the_client(docs_of, doc):
    docs = docs_of("sidecar")
    spec = doc(docs, "Deployment", "client")["spec"]["template"]["spec"]
    (sidecar,) = spec["initContainers"]
    assert sidecar["name"] == "envoy"
    assert sidecar["restartPolicy"] == "Always"
    assert spec["volumes"] == [{"name": "envoy-config", "configMap": {"name": "envoy"}}]
    assert not [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "proxy"]


def test_envoy_runs_as_the_images_envoy_user(docs_of):
    for scenario in ("proxy", "sidecar"):
        for d in (d for d in docs_of(scenario) if d["kind"] == "Deployment"):
            for c in all_containers(d):
                if c["name"] == "envoy":
                    pod = d["spec"]["template"]["spec"]["securityContext"]
                    uid = c["securityContext"].get("runAsUser", pod.get("runAsUser"))
                    assert uid == 101
                    assert c["command"] == ["envoy"]
                    assert c["args"][:2] == ["--config-path", "/etc/envoy/envoy.yaml"]


def test_kind_cluster_has_one_control_plane_and_two_workers():
    config = yaml.safe_load((K8S / "kind" / "cluster.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = sorted(n["role"] for n in config["nodes"])
    assert roles == ["control-plane", "worker", "worker"]


@pytest.mark.parametrize("component", sorted(p.name for p in (K8S / "components").iterdir()))
def test_every_component_is_used_by_some_overlay(component):
    used = set()
    users = [
        *(K8S / "overlays").glob("*/kustomization.yaml"),
        *(K8S / "uneven").glob("*/kustomization.yaml"),
    ]
    for path in users:
        used |= {Path(c).name for c in yaml.safe_load(path.read_text()).get("components", [])}
    assert component in used


# -- Kind node image, Kubernetes version, node layout

#: kind v0.33.0's release notes: the node images built for that release, tag and digest.
KIND_V0_33_IMAGES = {
    "v1.37.0": "sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5",
    "v1.36.4": "sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed",
    "v1.35.8": "sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0",
    "v1.34.11": "sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d",
}
#: Linkerd's supported Kubernetes versions per release (tests/upstream_facts.py).
_FACTS = ROOT / "tests" / "upstream_facts.py"
_spec = importlib.util.spec_from_file_location("upstream_facts", _FACTS)
assert _spec is not None
assert _spec.loader is not None
_facts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_facts)
LINKERD_KUBERNETES = _facts.LINKERD_KUBERNETES
NODE_IMAGE = re.compile(r"^kindest/node:(v(\d+)\.(\d+)\.\d+)@(sha256:[0-9a-f]{64})$")


def kind_nodes() -> list[dict]:
    return yaml.safe_load((K8S / "kind" / "cluster.yaml").read_text())["nodes"]


def pinned_kubernetes() -> tuple[int, int]:
    (image,) = {n.get("image") for n in kind_nodes()}
    match = NODE_IMAGE.match(image or "")
    assert match, f"node image not pinned by tag and digest: {image!r}"
    return int(match.group(2)), int(match.group(3))


def test_kind_nodes_run_one_image_pinned_by_tag_and_digest_from_kinds_release_notes():
    images = {n.get("image") for n in kind_nodes()}
    assert len(images) == 1, f"every node runs the same image, got {images}"
    (image,) = images
    match = NODE_IMAGE.match(image or "")
    assert match, f"expected kindest/node:vX.Y.Z@sha256:..., got {image!r}"
    tag, digest = match.group(1), match.group(4)
    assert KIND_V0_33_IMAGES.get(tag) == digest, f"{tag} is not an image built for kind v0.33"


@pytest.mark.parametrize("release", sorted(LINKERD_KUBERNETES))
def test_kind_runs_a_kubernetes_version_that_each_supported_linkerd_release_supports(release):
    oldest, newest = LINKERD_KUBERNETES[release]
    assert oldest <= pinned_kubernetes() <= newest


def test_manifests_are_validated_against_the_pinned_kubernetes_minor():
    major, minor = pinned_kubernetes()
    assert any(v.startswith(f"{major}.{minor}.") for v in KUBERNETES_VERSIONS)


def test_kind_has_two_schedulable_nodes():
    # Kind removes the control-plane taint only from a cluster without workers.
    roles = [n["role"] for n in kind_nodes()]
    schedulable = roles.count("worker") if "worker" in roles else roles.count("control-plane")
    assert schedulable == 2


def test_servers_spread_over_the_nodes_and_ignore_tainted_ones(scenario, docs_of, doc):
    spec = doc(docs_of(scenario), "Deployment", "server")["spec"]["template"]["spec"]
    (rule,) = spec["topologySpreadConstraints"]
    assert rule["topologyKey"] == "kubernetes.io/hostname"
    assert rule["maxSkew"] == 1
    assert rule["labelSelector"] == {"matchLabels": {"app.kubernetes.io/name": "server"}}
    # Kind's control plane is tainted: counted as a domain it would hold the skew at 0 there.
    assert rule.get("nodeTaintsPolicy") == "Honor"


def anti_affinity_to(deployment: dict) -> set[str]:
    """Apps whose pods this Deployment's pods keep off the node of (by hostname)."""
    affinity = deployment["spec"]["template"]["spec"].get("affinity", {})
    terms = affinity.get("podAntiAffinity", {})
    apps = set()
    for term in terms.get("requiredDuringSchedulingIgnoredDuringExecution", []):
        if term["topologyKey"] == "kubernetes.io/hostname":
            apps.add(term["labelSelector"]["matchLabels"]["app.kubernetes.io/name"])
    for weighted in terms.get("preferredDuringSchedulingIgnoredDuringExecution", []):
        term = weighted["podAffinityTerm"]
        if term["topologyKey"] == "kubernetes.io/hostname" and weighted["weight"] == 100:
            apps.add(term["labelSelector"]["matchLabels"]["app.kubernetes.io/name"])
    return apps


def test_the_proxy_hop_crosses_nodes_from_whichever_side_starts_last(docs_of, doc):
    docs = docs_of("proxy")
    assert anti_affinity_to(doc(docs, "Deployment", "proxy")) == {"client"}
    assert anti_affinity_to(doc(docs, "Deployment", "client")) == {"proxy"}


def test_only_the_proxy_scenario_keeps_the_client_off_a_node(scenario, docs_of, doc):
    if scenario != "proxy":
        assert anti_affinity_to(doc(docs_of(scenario), "Deployment", "client")) == set()


# -- which container `kubectl logs` reads, and how pods stop


def test_each_pod_names_its_own_container_as_the_default(scenario, docs_of):
    for deployment in (d for d in docs_of(scenario) if d["kind"] == "Deployment"):
        name = deployment["metadata"]["name"]
        template = deployment["spec"]["template"]
        default = template["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"]
        main = {"server": "server", "client": "client", "proxy": "envoy", "xds": "xds"}.get(
            name, {"server-canary": "server"}.get(name, name)
        )
        assert default == main, name
        assert default in [c["name"] for c in template["spec"]["containers"]], name


def prestop_sleep(container: dict) -> int:
    """Seconds of the container's preStop pause; the kubelet's own sleep action, so that no
    image needs a shell (GA in Kubernetes 1.34, on by default since 1.30: KEP-3960)."""
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    assert set(pre_stop) == {"sleep"}, f"{container['name']}: {pre_stop}"
    return int(pre_stop["sleep"]["seconds"])


def test_servers_leave_the_endpoints_drain_then_stop_within_the_grace(scenario, docs_of, doc):
    server = doc(docs_of(scenario), "Deployment", "server")
    container = main_container(server)
    env = env_of(container)
    pause = prestop_sleep(container)
    drain = seconds(env["DRAIN_DELAY"])
    grace = seconds(env["SHUTDOWN_GRACE"])
    period = server["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert (pause, drain, grace, period) == (5, 3.0, 10.0, 30)
    assert period > pause + drain + grace


def test_proxy_pods_pause_before_stopping_within_their_grace(docs_of, doc):
    proxy = doc(docs_of("proxy"), "Deployment", "proxy")
    pause = prestop_sleep(main_container(proxy))
    assert pause > 0
    assert proxy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > pause


def test_the_pinned_kubernetes_runs_the_prestop_sleep_action_by_default():
    assert pinned_kubernetes() >= (1, 30)


def test_linkerd_injects_its_proxy_as_a_native_sidecar(docs_of, doc):
    # Linkerd 2.19 reads the beta key, 2.20 the GA key (and defaults to native sidecars).
    keys = (
        "config.beta.linkerd.io/proxy-enable-native-sidecar",
        "config.linkerd.io/proxy-enable-native-sidecar",
    )
    for name in ("server", "client"):
        annotations = doc(docs_of("linkerd"), "Deployment", name)["spec"]["template"]["metadata"][
            "annotations"
        ]
        assert {annotations.get(k) for k in keys} == {"true"}, name


def test_the_client_watches_server_health_only_where_it_connects_to_every_server(
    scenario, docs_of, doc
):
    """Health checking follows the client's connections: to each server of a headless Service it
    tells round_robin which one drains; through a virtual IP or a proxy its one health stream
    reaches a single server, whose drain would stop the client altogether."""
    docs = docs_of(scenario)
    env = env_of(main_container(doc(docs, "Deployment", "client")))
    host = env["SERVER_ADDRESS"].rpartition("/")[2].split(":")[0].split(".")[0]
    direct = host == "server" and doc(docs, "Service", "server")["spec"].get("clusterIP") == "None"
    assert env["HEALTH_CHECK"] == ("true" if direct else "false"), env["SERVER_ADDRESS"]
