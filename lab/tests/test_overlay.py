"""The lab reads its parameters from the rendered overlays, and follows them when they change."""

import json
import shutil

import pytest
import yaml
from hellolb_lab import catalogue, overlay, timeline
from hellolb_lab.deployment import PodStop, RollingUpdate
from hellolb_lab.errors import LabError
from hellolb_lab.options import Net, Options


@pytest.mark.parametrize("name", catalogue.lab_names())
def test_every_lab_scenario_has_three_servers_and_a_client(name, k8s_dir):
    ov = overlay.load(name, k8s_dir)
    assert ov.namespace == catalogue.namespace(name)
    assert ov.server_replicas == 3
    assert ov.client_replicas == 1
    assert ov.client_env["SERVER_ADDRESS"]
    assert "POD_NAME" not in ov.server_env  # downward API values are the lab's to fill


@pytest.mark.parametrize("name", catalogue.names())
def test_the_scenario_name_comes_from_the_pod_label_as_on_a_cluster(name, k8s_dir):
    ov = overlay.load(name, k8s_dir)
    assert ov.server_env["SCENARIO"] == ov.client_env["SCENARIO"] == name


def test_a_reference_to_a_label_the_pod_lacks_is_refused():
    deployment = {
        "metadata": {"name": "server"},
        "spec": {
            "template": {
                "metadata": {"labels": {}},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "env": [
                                {
                                    "name": "SCENARIO",
                                    "valueFrom": {
                                        "fieldRef": {"fieldPath": "metadata.labels['missing']"}
                                    },
                                }
                            ],
                        }
                    ]
                },
            }
        },
    }
    client = {**deployment, "metadata": {"name": "client"}}
    text = yaml.safe_dump_all(
        [{"kind": "Deployment", **deployment}, {"kind": "Deployment", **client}]
    )
    with pytest.raises(LabError, match=r"SCENARIO refers to metadata.labels\['missing'\]"):
        overlay.parse(text, "x")


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
    assert set(proxy.deployments) == {"server", "client", "proxy"}
    assert set(overlay.load("xds", k8s_dir).deployments) == {"server", "client", "xds"}


def test_the_client_sees_the_config_map_files_its_own_container_mounts(k8s_dir):
    xds = overlay.load("xds", k8s_dir)
    (path,) = xds.client_files
    assert path == xds.client_env["GRPC_XDS_BOOTSTRAP"]
    assert json.loads(xds.client_files[path])["xds_servers"]
    # The sidecar's Envoy config is mounted into the Envoy container, not the client's.
    assert overlay.load("sidecar", k8s_dir).client_files == {}


def pod_with_mounts(mounts: list[dict], volume: dict) -> str:
    """A rendered overlay whose client mounts the ConfigMap ``files`` as ``volume`` says."""
    config_map = {"kind": "ConfigMap", "metadata": {"name": "files"}, "data": {"a": "1", "b": "2"}}
    docs = [config_map]
    for name in ("server", "client"):
        container = {"name": name, "volumeMounts": mounts if name == "client" else []}
        spec = {"containers": [container], "volumes": [{"name": "v", "configMap": volume}]}
        template = {"metadata": {}, "spec": spec}
        docs.append(
            {"kind": "Deployment", "metadata": {"name": name}, "spec": {"template": template}}
        )
    return yaml.safe_dump_all(docs)


@pytest.mark.parametrize(
    ("mount", "volume", "files"),
    [
        ({"mountPath": "/etc/x"}, {"name": "files"}, {"/etc/x/a": "1", "/etc/x/b": "2"}),
        (
            {"mountPath": "/etc/x"},
            {"name": "files", "items": [{"key": "b", "path": "sub/b.json"}]},
            {"/etc/x/sub/b.json": "2"},
        ),
        ({"mountPath": "/etc/x.json", "subPath": "a"}, {"name": "files"}, {"/etc/x.json": "1"}),
        ({"mountPath": "/etc/x"}, {"name": "elsewhere"}, {}),
    ],
)
def test_mounted_config_map_files_follow_items_and_sub_paths(mount, volume, files):
    parsed = overlay.parse(pod_with_mounts([{"name": "v", **mount}], volume), "x")
    assert parsed.client_files == files


def test_unknown_overlay_is_named(k8s_dir):
    with pytest.raises(LabError, match=r"known: .*headless"):
        overlay.load("nope", k8s_dir)


def test_a_changed_overlay_changes_the_lab(tmp_path, k8s_dir, lab_net):
    """Two servers instead of three, a different work time: the lab runs what the overlay says."""
    copy = tmp_path / "k8s"
    shutil.copytree(k8s_dir, copy)
    path = copy / "overlays" / "headless" / "kustomization.yaml"
    kustomization = yaml.safe_load(path.read_text())
    assert "patches" not in kustomization
    assert "replicas" not in kustomization
    kustomization["replicas"] = [{"name": "server", "count": 2}]
    kustomization["patches"] = [
        {
            "target": {"kind": "Deployment", "name": "server"},
            "patch": "- op: add\n  path: /spec/template/spec/containers/0/env/-\n"
            "  value: {name: WORK_TIME, value: 50ms}\n",
        }
    ]
    path.write_text(yaml.safe_dump(kustomization))
    ov = overlay.load("headless", copy)
    assert ov.server_replicas == 2
    assert ov.server_env["WORK_TIME"] == "50ms"

    options = Options(
        warmup=2, after=2, net=Net(lab_net(81)), k8s_dir=copy, log_dir=tmp_path / "l", phases=()
    )
    result = timeline.run("headless", options)
    assert set(result.verdict.servers_before) == {"server-1", "server-2"}
    assert result.verdict.new_servers == ("server-3", "server-4", "server-5")
    assert result.settings["server_env"]["WORK_TIME"] == "50ms"
    # 50 ms of work instead of 200 ms shows in the client's latency
    assert result.latency_ms["p50"] < 150


def test_rollout_settings_and_pod_stop_come_from_the_server_deployment(k8s_dir):
    headless = overlay.load("headless", k8s_dir)
    assert headless.server_rollout == RollingUpdate(max_surge=1, max_unavailable=0, min_ready_s=4)
    assert headless.server_stop == PodStop(prestop_s=5, grace_s=30)
    # no strategy in the manifest: the API's defaults
    assert overlay.load("proxy", k8s_dir).server_rollout == RollingUpdate("25%", "25%", 0)


def deployments(server_spec: dict, container: dict | None = None) -> str:
    def deployment(name: str, spec: dict, main: dict) -> dict:
        template = {"metadata": {}, "spec": {"containers": [{"name": name, **main}]}}
        return {
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {**spec, "template": template},
        }

    server = deployment("server", server_spec, container or {})
    return yaml.safe_dump_all([server, deployment("client", {}, {})])


def test_a_strategy_the_lab_cannot_roll_out_is_refused():
    with pytest.raises(LabError, match="only by RollingUpdate"):
        overlay.parse(deployments({"strategy": {"type": "Recreate"}}), "x")


def test_a_prestop_hook_the_lab_cannot_run_is_refused():
    hook = {"lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}}
    with pytest.raises(LabError, match=r"preStop sleep, not \['exec'\]"):
        overlay.parse(deployments({}, hook), "x")
