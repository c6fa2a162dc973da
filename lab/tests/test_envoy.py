"""The scenario's Envoy config, moved onto loopback and nothing else; the ClusterIP stand-in."""

import copy

import pytest
from hellolb_lab import catalogue, envoy, overlay, procs
from hellolb_lab.errors import LabError

DNS = ("127.0.82.1", 5353)


@pytest.fixture(scope="module")
def proxy_overlay(k8s_dir):
    return overlay.load("proxy", k8s_dir)


@pytest.fixture(scope="module")
def proxy_config(proxy_overlay):
    return proxy_overlay.envoy_config


def strip_lab_changes(config):
    config = copy.deepcopy(config)
    for cluster in envoy.dns_clusters(config):
        cluster.pop("typed_dns_resolver_config")
    return config


def test_adapt_moves_only_addresses_and_the_resolver(proxy_config, proxy_overlay):
    adapted = envoy.adapt(proxy_config, dns=DNS, listen_ip="127.0.82.21")
    resolver = adapted["static_resources"]["clusters"][0]["typed_dns_resolver_config"]
    assert resolver["typed_config"]["resolvers"] == [
        {"socket_address": {"address": "127.0.82.1", "port_value": 5353}}
    ]
    assert adapted["admin"]["address"]["socket_address"]["address"] == "127.0.82.21"
    listener = adapted["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener["address"] == "127.0.82.21"
    # put the addresses back and the rest is the ConfigMap's, unchanged
    restored = strip_lab_changes(adapted)
    restored["admin"]["address"]["socket_address"]["address"] = "0.0.0.0"
    restored["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] = "0.0.0.0"
    assert restored == proxy_config
    server = f"server.{catalogue.namespace('proxy')}.svc.cluster.local."
    assert envoy.dns_names(adapted) == [(server, 50051)]
    assert envoy.dns_refresh_seconds(adapted) == 5.0


def test_adapted_and_clusterip_configs_pass_envoy_validate(proxy_config, tmp_path):
    binary = procs.find_binary("envoy")
    adapted = envoy.adapt(proxy_config, dns=DNS, listen_ip="127.0.82.21")
    envoy.validate(binary, envoy.write(adapted, tmp_path / "proxy.yaml"))
    vip = envoy.clusterip_config(
        vip="127.0.82.30", port=50051, endpoints_name="endpoints.lab", dns=DNS
    )
    tcp = vip["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    assert tcp["name"] == "envoy.filters.network.tcp_proxy"
    assert vip["static_resources"]["clusters"][0]["lb_policy"] == "RANDOM"
    envoy.validate(binary, envoy.write(vip, tmp_path / "vip.yaml"))
    broken = copy.deepcopy(vip)
    broken["static_resources"]["clusters"][0]["lb_policy"] = "NOPE"
    with pytest.raises(LabError, match="envoy rejects"):
        envoy.validate(binary, envoy.write(broken, tmp_path / "broken.yaml"))


def test_argv_keeps_the_overlay_flags_and_uses_the_lab_file(tmp_path):
    args = ("--config-path", "/etc/envoy/envoy.yaml", "--log-level", "info")
    argv = envoy.argv("envoy", tmp_path / "x.yaml", args)
    assert argv[:3] == ["envoy", "--log-level", "info"]
    assert "/etc/envoy/envoy.yaml" not in argv
    assert argv[argv.index("--config-path") + 1] == str(tmp_path / "x.yaml")
    assert "--disable-hot-restart" in argv
