"""The lab reads its parameters from the rendered overlays, and follows them when they change."""

import shutil

import pytest
from hellolb_lab import overlay, scenarios
from hellolb_lab.procs import LabError


@pytest.mark.parametrize("name", scenarios.SCENARIOS)
def test_every_lab_scenario_has_three_servers_and_a_client(name, k8s_dir):
    ov = overlay.load(name, k8s_dir)
    assert ov.namespace == f"grpc-lb-{name}"
    assert ov.server_replicas == 3
    assert ov.client_replicas == 1
    assert ov.client_env["SERVER_ADDRESS"]
    assert ov.server_env["SCENARIO"] == name
    assert "POD_NAME" not in ov.server_env  # downward API values are the lab's to fill


def test_scenario_shapes_come_from_the_manifests(k8s_dir):
    clusterip = overlay.load("clusterip", k8s_dir)
    assert clusterip.services == {"server": False}
    assert not clusterip.uses_envoy
    headless = overlay.load("headless", k8s_dir)
    assert headless.services == {"server": True}
    maxage = overlay.load("maxage", k8s_dir)
    assert "MAX_CONNECTION_AGE" in maxage.server_env
    proxy = overlay.load("proxy", k8s_dir)
    assert proxy.proxy_replicas == 1
    assert proxy.envoy_config["static_resources"]["clusters"][0]["type"] == "STRICT_DNS"
    sidecar = overlay.load("sidecar", k8s_dir)
    assert sidecar.sidecar
    assert sidecar.client_env["SERVER_ADDRESS"].startswith("ipv4:127.0.0.1:")


def test_unknown_overlay_is_named(k8s_dir):
    with pytest.raises(LabError, match=r"known: .*headless"):
        overlay.load("nope", k8s_dir)


def patched_k8s(tmp_path, k8s_dir, overlay_name, old, new):
    copy = tmp_path / "k8s"
    shutil.copytree(k8s_dir, copy)
    path = copy / "overlays" / overlay_name / "kustomization.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return copy


def test_a_changed_overlay_changes_the_lab(tmp_path, k8s_dir, lab_net):
    """Two servers instead of three, a different work time: the lab runs what the overlay says."""
    copy = patched_k8s(
        tmp_path,
        k8s_dir,
        "headless",
        "value: {name: SCENARIO, value: headless}",
        "value: {name: SCENARIO, value: headless}\n"
        "      - op: add\n        path: /spec/template/spec/containers/0/env/-\n"
        "        value: {name: WORK_TIME, value: 50ms}",
    )
    replicas = copy / "overlays" / "headless" / "kustomization.yaml"
    replicas.write_text(replicas.read_text() + "replicas:\n  - name: server\n    count: 2\n")
    ov = overlay.load("headless", copy)
    assert ov.server_replicas == 2
    assert ov.server_env["WORK_TIME"] == "50ms"

    options = scenarios.Options(
        warmup=2, after=2, net=scenarios.Net(lab_net(81)), k8s_dir=copy, log_dir=tmp_path / "logs"
    )
    result = scenarios.run("headless", options)
    assert set(result.verdict.servers_before) == {"server-1", "server-2"}
    assert result.verdict.new_servers == ("server-3", "server-4", "server-5")
    assert result.settings["server_env"]["WORK_TIME"] == "50ms"
    # 50 ms of work instead of 200 ms shows in the client's latency
    assert result.latency_ms["p50"] < 150
