"""The Envoy configurations of the proxy and sidecar scenarios: accepted by the real Envoy
(``envoy --mode validate``, same version as the image), and wired to the right Service."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from hellolb.v1 import hello_pb2

ROOT = Path(__file__).resolve().parent.parent
ENVOY_SCENARIOS = ("proxy", "sidecar")
IMAGE = "envoyproxy/envoy:v1.40.0"
#: Where each scenario's Envoy listens for the client, and where its admin interface is.
LISTENER = {"proxy": ("0.0.0.0", 50051), "sidecar": ("127.0.0.1", 15001)}
ADMIN = {"proxy": ("0.0.0.0", 9901), "sidecar": ("127.0.0.1", 9901)}


def envoy_config(docs_of, doc, scenario: str) -> dict:
    config_map = doc(docs_of(scenario), "ConfigMap", "envoy")
    assert set(config_map["data"]) == {"envoy.yaml"}
    return yaml.safe_load(config_map["data"]["envoy.yaml"])


def validate(envoy: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [envoy, "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def socket(address: dict) -> tuple[str, int]:
    s = address["socket_address"]
    return s["address"], s["port_value"]


@pytest.mark.parametrize("scenario", ENVOY_SCENARIOS)
def test_rendered_config_map_is_the_overlays_envoy_file(scenario, docs_of, doc):
    file = yaml.safe_load((ROOT / "k8s" / "overlays" / scenario / "envoy.yaml").read_text())
    assert envoy_config(docs_of, doc, scenario) == file


@pytest.mark.parametrize("scenario", ENVOY_SCENARIOS)
def test_envoy_accepts_the_config(scenario, docs_of, doc, tool, tmp_path):
    # Validation mode builds every listener and cluster without resolving DNS, so the
    # in-cluster name of the server Service is fine here.
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(envoy_config(docs_of, doc, scenario)))
    result = validate(tool("envoy"), path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_envoy_rejects_a_misspelt_field(docs_of, doc, tool, tmp_path):
    config = envoy_config(docs_of, doc, "proxy")
    config["static_resources"]["clusters"][0]["lb_polcy"] = "ROUND_ROBIN"
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    assert validate(tool("envoy"), path).returncode != 0


@pytest.mark.parametrize("scenario", ENVOY_SCENARIOS)
def test_one_listener_feeds_one_http2_round_robin_cluster_over_the_headless_servers(
    scenario, docs_of, doc
):
    config = envoy_config(docs_of, doc, scenario)
    (listener,) = config["static_resources"]["listeners"]
    (cluster,) = config["static_resources"]["clusters"]
    assert socket(listener["address"]) == LISTENER[scenario]
    assert socket(config["admin"]["address"]) == ADMIN[scenario]

    (chain,) = listener["filter_chains"]
    (hcm,) = chain["filters"]
    routes = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert {r["route"]["cluster"] for r in routes} == {"server"}

    assert cluster["name"] == "server"
    assert cluster["type"] == "STRICT_DNS"
    assert cluster["lb_policy"] == "ROUND_ROBIN"
    options = cluster["typed_extension_protocol_options"]
    http = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in http["explicit_http_config"]
    (endpoint,) = [
        e["endpoint"]
        for group in cluster["load_assignment"]["endpoints"]
        for e in group["lb_endpoints"]
    ]
    host, port = socket(endpoint["address"])
    # Fully qualified with a trailing dot, in the namespace the headless Service renders into,
    # so a DNS refresh asks for that one name and never walks the search domains.
    service = doc(docs_of(scenario), "Service", "server")
    namespace = service["metadata"]["namespace"]
    assert (host, port) == (f"server.{namespace}.svc.cluster.local.", 50051)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"][0]["port"] == port


@pytest.mark.parametrize("scenario", ENVOY_SCENARIOS)
def test_access_log_names_the_upstream_server_of_each_request(scenario, docs_of, doc):
    config = envoy_config(docs_of, doc, scenario)
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    (log,) = hcm["typed_config"]["access_log"]
    fields = log["typed_config"]["log_format"]["json_format"]
    assert fields["event"] == "proxy.request"
    assert fields["upstream_host"] == "%UPSTREAM_HOST%"


@pytest.mark.parametrize("scenario", ENVOY_SCENARIOS)
def test_the_client_talks_to_this_envoy(scenario, docs_of, doc):
    docs = docs_of(scenario)
    client = doc(docs, "Deployment", "client")["spec"]["template"]["spec"]["containers"][0]
    target = {e["name"]: e.get("value") for e in client["env"]}["SERVER_ADDRESS"]
    host, port = LISTENER[scenario]
    if scenario == "sidecar":
        assert target == f"ipv4:{host}:{port}"
    else:
        assert target == f"dns:///proxy:{port}"
        proxy = doc(docs, "Service", "proxy")
        assert proxy["spec"]["ports"][0]["port"] == port


def test_envoy_image_tag_is_the_version_the_tests_validate_with(tool):
    out = subprocess.run(
        [tool("envoy"), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    match = re.search(r"/(\d+\.\d+\.\d+)/", out)
    assert match, out
    assert f"envoyproxy/envoy:v{match.group(1)}" == IMAGE


def test_every_envoy_container_uses_the_pinned_image(docs_of):
    images = set()
    for scenario in ENVOY_SCENARIOS:
        for d in docs_of(scenario):
            if d["kind"] == "Deployment":
                spec = d["spec"]["template"]["spec"]
                for c in [*spec.get("initContainers", []), *spec["containers"]]:
                    if "envoy" in c["image"]:
                        images.add(c["image"])
    assert images == {IMAGE}


def test_envoy_runs_no_more_workers_than_its_cpu_limit_has_cores(docs_of):
    """Envoy's default is one worker per hardware thread of the node, whatever the limit."""
    seen = 0
    for scenario in ENVOY_SCENARIOS:
        for d in docs_of(scenario):
            if d["kind"] != "Deployment":
                continue
            spec = d["spec"]["template"]["spec"]
            for c in [*spec.get("initContainers", []), *spec["containers"]]:
                if "envoy" not in c["image"]:
                    continue
                args = c["args"]
                workers = int(args[args.index("--concurrency") + 1])
                limit = c["resources"]["limits"]["cpu"]
                cores = int(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
                assert 1 <= workers <= max(1, math.ceil(cores)), (scenario, c["name"])
                seen += 1
    assert seen == len(ENVOY_SCENARIOS)


# -- behaviour while servers come and go

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")
#: Failures that happen before any server answered: safe to retry on the idempotent Hello.
SAFE_TO_RETRY = {"connect-failure", "refused-stream", "reset", "unavailable"}


def envoy_seconds(value: str) -> float:
    match = DURATION.match(value)
    assert match, value
    return float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)


def routes_of(config: dict) -> list[dict]:
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    return hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]


def server_route(config: dict) -> dict:
    """The route unary calls take (the catch-all)."""
    return route_for(config, method_path("Hello"))


def method_path(method: str) -> str:
    """The HTTP/2 path of a Hello service method, from the generated code's descriptor."""
    service = hello_pb2.DESCRIPTOR.services_by_name["HelloService"]
    return f"/{service.full_name}/{service.methods_by_name[method].name}"


def matches(match: dict, path: str) -> bool:
    """Whether a route's ``match`` takes ``path``; a kind of match this reader does not know
    fails the test rather than being skipped."""
    assert set(match) <= {"path", "prefix"}, f"unknown route match {match}"
    if "path" in match:
        return match["path"] == path
    return path.startswith(match["prefix"])


def route_for(config: dict, path: str) -> dict:
    """The route Envoy gives ``path``: the first that matches, in order."""
    found = next((r for r in routes_of(config) if matches(r["match"], path)), None)
    assert found is not None, f"no route takes {path}"
    return found["route"]


@pytest.mark.parametrize("scenario", ENVOY_SCENARIOS)
def test_failed_calls_are_retried_on_another_server_when_safe(scenario, docs_of, doc):
    route = server_route(envoy_config(docs_of, doc, scenario))
    policy = route["retry_policy"]
    assert set(policy["retry_on"].split(",")) == SAFE_TO_RETRY
    assert 1 <= policy["num_retries"] <= 3
    (predicate,) = policy["retry_host_predicate"]
    assert predicate["name"] == "envoy.retry_host_predicates.previous_hosts"
    assert policy["host_selection_retry_max_attempts"] >= 1


@pytest.mark.parametrize("scenario", ENVOY_SCENARIOS)
def test_unary_calls_keep_a_finite_timeout(scenario, docs_of, doc):
    route = server_route(envoy_config(docs_of, doc, scenario))
    assert 0 < envoy_seconds(route["timeout"]) <= 30


@pytest.mark.parametrize("scenario", ENVOY_SCENARIOS)
def test_no_timeout_of_envoy_cuts_a_ticks_stream(scenario, docs_of, doc):
    config = envoy_config(docs_of, doc, scenario)
    route = route_for(config, method_path("Ticks"))
    # A route timeout runs for a server stream's whole life (15 s when unset): 0s turns it off.
    assert envoy_seconds(route["timeout"]) == 0
    # No stream duration cap either, on the route or for the whole listener.
    limit = route.get("max_stream_duration", {}).get("max_stream_duration", "0s")
    assert envoy_seconds(limit) == 0
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    common = hcm["typed_config"].get("common_http_protocol_options", {})
    assert envoy_seconds(common.get("max_stream_duration", "0s")) == 0
    # Opening a stream is retried like a unary call.
    assert route["retry_policy"] == server_route(config)["retry_policy"]


@pytest.mark.parametrize("scenario", ENVOY_SCENARIOS)
def test_a_draining_or_dead_server_is_dropped_before_it_stops_serving(scenario, docs_of, doc):
    docs = docs_of(scenario)
    (cluster,) = envoy_config(docs_of, doc, scenario)["static_resources"]["clusters"]
    (check,) = cluster["health_checks"]
    # The standard gRPC health service, for the one service the route serves.
    assert check["grpc_health_check"] == {"service_name": "hellolb.v1.HelloService"}
    server = doc(docs, "Deployment", "server")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in server["env"]}
    drain = envoy_seconds(env["DRAIN_DELAY"])
    # From NOT_SERVING to out of the pool: up to one interval until the next check, then the
    # failed checks needed, each allowed its timeout.
    detection = envoy_seconds(check["interval"]) * check["unhealthy_threshold"]
    detection += envoy_seconds(check["timeout"])
    assert detection <= drain, f"{detection}s to drop a server that drains for {drain}s"
    assert check["healthy_threshold"] == 1, "a new server is used after one good check"
    outlier = cluster["outlier_detection"]
    assert outlier["consecutive_gateway_failure"] >= 1
    # Envoy enforces gateway-failure ejection at 0% unless told otherwise.
    assert outlier["enforcing_consecutive_gateway_failure"] == 100
    assert 0 < outlier["max_ejection_percent"] < 100
    # A server that fails every call may still pass its health checks: the ejection must hold.
    assert outlier["successful_active_health_check_uneject_host"] is False
