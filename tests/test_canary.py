"""The canary scenario's manifests and weight script, offline.

The route is checked against the fields Gateway API documents for GRPCRoute v1 (kubernetes-
validate has no schema for it), against the Services and Deployments it names in the rendered
overlay, and, when a Gateway API CRD bundle is at hand, against the CRD's own schema. The
weight script runs against a stand-in ``kubectl`` that keeps the rendered route in a file and
applies the script's JSON patch to it as the API server would, by RFC 6902 (which
``kubectl patch --type=json`` sends): ``test`` compares the value at a path (4.6), ``replace``
needs the path to exist (4.3), and a patch whose operation fails changes nothing (5).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "k8s" / "canary" / "canary-weight.sh"
NAMESPACE = "grpc-lb-canary"
#: GRPCRoute v1's fields, from Gateway API v1.2.1's API reference (gateway-api.sigs.k8s.io,
#: "GRPCRoute", "ParentReference", "GRPCRouteRule", "GRPCBackendRef"). The mesh (GAMMA) use
#: attaches a route to a Service with parentRefs kind Service.
SPEC_FIELDS = {"parentRefs", "hostnames", "rules"}
PARENT_FIELDS = {"group", "kind", "namespace", "name", "sectionName", "port"}
RULE_FIELDS = {"matches", "filters", "backendRefs", "sessionPersistence", "name"}
BACKEND_FIELDS = {"group", "kind", "name", "namespace", "port", "weight", "filters"}
#: BackendRef.weight: 0 to 1,000,000 (its kubebuilder bounds); PortNumber: 1 to 65535.
MAX_WEIGHT = 1_000_000


def route(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == "GRPCRoute"]
    return found


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pods_selected(docs: list[dict[str, Any]], service: dict[str, Any]) -> set[str]:
    """The Deployments whose pods ``service`` selects."""
    return {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Deployment"
        and selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
    }


# -- the route, by its documented fields


def test_the_route_is_a_grpcroute_v1_with_only_documented_fields(docs_of):
    r = route(docs_of("canary"))
    assert r["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert r["metadata"]["namespace"] == NAMESPACE
    assert set(r["spec"]) <= SPEC_FIELDS
    assert 1 <= len(r["spec"]["parentRefs"]) <= 32
    assert 1 <= len(r["spec"]["rules"]) <= 16
    for parent in r["spec"]["parentRefs"]:
        assert set(parent) <= PARENT_FIELDS
        assert 1 <= parent["port"] <= 65535
    for rule in r["spec"]["rules"]:
        assert set(rule) <= RULE_FIELDS
        assert 1 <= len(rule["backendRefs"]) <= 16
        for backend in rule["backendRefs"]:
            assert set(backend) <= BACKEND_FIELDS
            assert isinstance(backend["weight"], int)
            assert 0 <= backend["weight"] <= MAX_WEIGHT
            assert 1 <= backend["port"] <= 65535


def test_the_route_attaches_to_the_service_the_client_calls(docs_of, doc):
    docs = docs_of("canary")
    (parent,) = route(docs)["spec"]["parentRefs"]
    # An outbound route for Linkerd: a Service parent, in the group Linkerd's docs write
    # ("core"; its policy controller takes "" too).
    assert (parent["group"], parent["kind"], parent["name"]) == ("core", "Service", "server")
    service = doc(docs, "Service", "server")
    assert parent["port"] in [p["port"] for p in service["spec"]["ports"]]
    client = doc(docs, "Deployment", "client")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in client["env"]}
    assert env["SERVER_ADDRESS"] == f"dns:///server:{parent['port']}"


def test_each_backend_is_a_service_of_exactly_one_server_deployment(docs_of, doc):
    docs = docs_of("canary")
    (rule,) = route(docs)["spec"]["rules"]
    backends = {b["name"]: b for b in rule["backendRefs"]}
    expected = {"server-stable": {"server"}, "server-canary": {"server-canary"}}
    assert list(backends) == ["server-stable", "server-canary"]
    for name, deployments in expected.items():
        service = doc(docs, "Service", name)
        assert service["spec"]["type"] == "ClusterIP"
        assert backends[name]["port"] in [p["port"] for p in service["spec"]["ports"]]
        # No kind or group: a Service, Gateway API's default.
        assert "kind" not in backends[name]
        assert "group" not in backends[name]
        assert pods_selected(docs, service) == deployments


def test_the_route_starts_with_every_call_on_the_stable_servers(docs_of):
    (rule,) = route(docs_of("canary"))["spec"]["rules"]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [
        ("server-stable", 100),
        ("server-canary", 0),
    ]


def test_the_parent_service_selects_stable_and_canary_pods(docs_of, doc):
    """Without the route, calls would split by pod count: the usual Kubernetes canary."""
    docs = docs_of("canary")
    assert pods_selected(docs, doc(docs, "Service", "server")) == {"server", "server-canary"}


def test_no_service_profile_overrides_the_route(docs_of):
    """Linkerd gives a ServiceProfile precedence over routes on the same Service
    (linkerd.io/2.19/reference/grpcroute)."""
    assert not [d for d in docs_of("canary") if d["kind"] == "ServiceProfile"]


# The route against the GRPCRoute CRD's own schema: tests/test_crd_schemas.py.


# -- the canary servers, derived from the base's


def test_the_canary_runs_the_stable_servers_pod_but_for_its_labels(docs_of, doc):
    docs = docs_of("canary")
    stable, canary = doc(docs, "Deployment", "server"), doc(docs, "Deployment", "server-canary")
    assert canary["spec"]["replicas"] == 1
    s_spec, c_spec = stable["spec"]["template"]["spec"], canary["spec"]["template"]["spec"]
    assert c_spec["containers"] == s_spec["containers"]
    assert c_spec["serviceAccountName"] == "server-canary"
    # Meshed like the stable servers: same Linkerd annotations.
    s_meta, c_meta = stable["spec"]["template"]["metadata"], canary["spec"]["template"]["metadata"]
    assert c_meta["annotations"] == s_meta["annotations"]
    assert c_meta["labels"]["app.kubernetes.io/version"] == "canary"
    assert s_meta["labels"]["app.kubernetes.io/version"] == "stable"
    spread = c_spec["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]
    assert spread == canary["spec"]["selector"]["matchLabels"]


def test_stable_and_canary_selectors_do_not_overlap(docs_of, doc):
    docs = docs_of("canary")
    stable, canary = doc(docs, "Deployment", "server"), doc(docs, "Deployment", "server-canary")
    for a, b in ((stable, canary), (canary, stable)):
        assert not selects(
            a["spec"]["selector"]["matchLabels"], b["spec"]["template"]["metadata"]["labels"]
        )


# -- the weight script, against a stand-in kubectl

FAKE_KUBECTL = r"""#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["CALLS"], "a") as calls:
    calls.write(json.dumps(args) + "\n")
state = os.environ["ROUTE"]
route = json.load(open(state))
if "patch" in args:
    patch = json.loads(args[args.index("-p") + 1])
    if "--type=json" not in args:
        sys.exit("expected a JSON patch")
    def walk(path):
        parts = path.lstrip("/").split("/")
        node = route
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        last = parts[-1]
        return node, int(last) if isinstance(node, list) else last
    for op in patch:
        node, key = walk(op["path"])
        if op["op"] == "test":
            if node[key] != op["value"]:
                sys.exit("The request is invalid: the server rejected our request due to an "
                         "error in our request (test failed at " + op["path"] + ")")
        elif op["op"] == "replace":
            # RFC 6902 4.3: the target location must exist.
            if (key not in node) if isinstance(node, dict) else not (0 <= key < len(node)):
                sys.exit("The request is invalid: replace of a missing path " + op["path"])
            node[key] = op["value"]
        else:
            sys.exit("unexpected op " + op["op"])
    json.dump(route, open(state, "w"))
    print("grpcroute.gateway.networking.k8s.io/server patched")
elif "get" in args:
    backends = route["spec"]["rules"][0]["backendRefs"]
    print(" ".join(f"{{b['name']}}={{b['weight']}}" for b in backends) + " ")
else:
    sys.exit("unexpected kubectl call: " + " ".join(args))
"""


@pytest.fixture
def kubectl(tmp_path, docs_of):
    """A stand-in kubectl holding the rendered route; returns (run, route, calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(FAKE_KUBECTL.format(python=sys.executable))
    fake.chmod(0o755)
    state, calls = tmp_path / "route.json", tmp_path / "calls"
    state.write_text(json.dumps(route(docs_of("canary"))))
    calls.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.update(ROUTE=str(state), CALLS=str(calls))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60
        )

    def weights() -> list[tuple[str, int]]:
        rule = json.loads(state.read_text())["spec"]["rules"][0]
        return [(b["name"], b["weight"]) for b in rule["backendRefs"]]

    def recorded() -> list[list[str]]:
        return [json.loads(line) for line in calls.read_text().splitlines()]

    return run, weights, recorded, state


def test_the_script_shifts_the_weight_step_by_step_and_rolls_back(kubectl):
    run, weights, _, _ = kubectl
    for percent in (0, 10, 50, 100, 0):
        result = run(str(percent))
        assert result.returncode == 0, result.stderr
        expected = [("server-stable", 100 - percent), ("server-canary", percent)]
        assert weights() == expected
        assert result.stdout.split() == [f"{n}={w}" for n, w in expected]


def test_the_script_works_in_the_scenario_namespace_and_the_given_context(kubectl):
    run, _, recorded, _ = kubectl
    assert run("10").returncode == 0
    assert run("--context", "kind-grpc-lb-lab", "--namespace", "elsewhere", "50").returncode == 0
    first, second = recorded()[0], recorded()[2]
    assert first[:3] == ["-n", NAMESPACE, "patch"]
    assert second[:5] == ["--context", "kind-grpc-lb-lab", "-n", "elsewhere", "patch"]


@pytest.mark.parametrize("bad", ["101", "-1", "5.5", "010", "ten", ""])
def test_the_script_refuses_a_bad_percent_before_any_kubectl_call(kubectl, bad):
    run, weights, recorded, _ = kubectl
    result = run(bad)
    assert result.returncode == 2
    assert "0 to 100" in result.stderr
    assert recorded() == []
    assert weights() == [("server-stable", 100), ("server-canary", 0)]


def test_the_script_refuses_two_percents(kubectl):
    run, _, recorded, _ = kubectl
    assert run("10", "20").returncode == 2
    assert recorded() == []


def test_the_script_never_weights_the_wrong_backend(kubectl):
    """Backends in another order: the patch's tests fail and no weight changes."""
    run, weights, _, state = kubectl
    r = json.loads(state.read_text())
    r["spec"]["rules"][0]["backendRefs"].reverse()
    state.write_text(json.dumps(r))
    result = run("10")
    assert result.returncode != 0
    assert weights() == [("server-canary", 0), ("server-stable", 100)]
