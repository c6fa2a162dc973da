"""ORCA load reports only where a balancer reads them: each report costs the server CPU on every
call, and every balancer but the weighted round robins ignores it.

Which balancer reads them is derived here from the configs the processes get, not from a list:
the client's service config (what ``hello_client`` hands grpc), and the load-balancing policy of
the Envoy cluster a lane or a scenario runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from hello_client.channel import service_config
from hello_client.config import ClientConfig
from hello_server.config import ServerConfig
from hellolb_lab import balancers, catalogue, overlay, uneven
from hellolb_lab.xds import policies


def policy_names(config: Any) -> Iterator[str]:
    """Every policy name in a gRPC service config's ``loadBalancingConfig``, children too."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key not in ("loadBalancingConfig", "childPolicy"):
                yield key
            yield from policy_names(value)
    elif isinstance(config, list):
        for item in config:
            yield from policy_names(item)


def client_reads(env: Mapping[str, str]) -> bool:
    if env.get("SERVER_ADDRESS", "").startswith("xds:"):
        # The control plane chooses the policy, in CDS: the lab's runs with its default, as
        # wongnai/xds always sends ROUND_ROBIN (k8s/overlays/xds/kustomization.yaml).
        names = {policies.DEFAULT}
    else:
        names = set(policy_names(service_config(ClientConfig.from_env(dict(env)))))
    return bool(names & set(balancers.GRPC_ORCA_POLICIES))


def envoy_reads(config: Mapping[str, Any] | None) -> bool:
    clusters = ((config or {}).get("static_resources") or {}).get("clusters") or []
    return any(
        name in balancers.ENVOY_ORCA_POLICIES
        for cluster in clusters
        for name in balancers.envoy_policy_names(cluster)
    )


def reports(env: Mapping[str, str]) -> bool:
    return ServerConfig.from_env(dict(env)).orca_reports


def test_the_server_sends_no_load_report_unless_asked():
    assert reports({}) is False
    assert reports({"ORCA_REPORTS": "true"}) is True


@pytest.mark.parametrize("fault", balancers.FAULTS)
def test_uneven_servers_report_load_exactly_in_the_lanes_whose_balancer_reads_it(
    overlay_of, lab_net, fault
):
    lanes = uneven.plan(
        uneven.Setup(fault=fault, net=lab_net(140)), overlay_of("proxy").envoy_config
    )
    readers = {
        lane.balancer.name: client_reads(lane.client.env)
        or envoy_reads(lane.envoy.config if lane.envoy else None)
        for lane in lanes
    }
    # Both kinds are in the comparison: grpc's weighted round robin and Envoy's.
    assert not all(readers.values())
    assert any(readers[lane.balancer.name] and not lane.balancer.envoy for lane in lanes)
    assert any(readers[lane.balancer.name] and lane.balancer.envoy for lane in lanes)
    for lane in lanes:
        sending = {reports(s.env) for s in lane.servers}
        assert sending == {readers[lane.balancer.name]}, lane.balancer.name


def deployments(text: str) -> list[dict[str, Any]]:
    return [
        d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind") == "Deployment"
    ]


def env_of(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}


@pytest.mark.parametrize("scenario", catalogue.names())
def test_a_scenarios_servers_report_load_only_if_its_balancer_reads_it(k8s_dir, scenario):
    text = overlay.render(scenario, k8s_dir)
    ov = overlay.parse(text, scenario)
    readers = client_reads(ov.client_env) or envoy_reads(ov.envoy_config)
    servers = [
        c
        for d in deployments(text)
        for c in d["spec"]["template"]["spec"]["containers"]
        if c["name"] == "server"
    ]
    assert servers
    assert {reports(env_of(c)) for c in servers} == {readers}
