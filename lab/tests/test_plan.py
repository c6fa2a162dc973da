"""The plan: computed from the record, the overlay and the options, before any process starts.

The last tests add a scenario the way a contributor would (one record, one overlay) in a copy
of ``k8s/``, and plan and run it without touching any other file.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import pytest
from hello_client.config import ClientConfig
from hellolb_lab import catalogue, judging, timeline
from hellolb_lab.catalogue import Bound, Phase, Reach, Scenario
from hellolb_lab.errors import LabError
from hellolb_lab.options import Net, Options
from hellolb_lab.phases import crash, rollout
from hellolb_lab.plan import Front

NET = Net("127.0.77")


def plan_of(name, overlay_of, **options):
    return timeline.plan(catalogue.get(name), Options(net=NET, **options), overlay_of(name))


@pytest.mark.parametrize(
    ("name", "front"),
    [
        ("clusterip", Front.KUBE_PROXY),
        ("headless", Front.SERVERS),
        ("maxage", Front.SERVERS),
        ("proxy", Front.PROXIES),
        ("sidecar", Front.SIDECAR),
        ("xds", Front.CONTROL_PLANE),
    ],
)
def test_what_answers_the_client_follows_the_overlay(name, front, overlay_of):
    assert plan_of(name, overlay_of).target.front is front


def test_dns_names_and_client_targets(overlay_of):
    ns = overlay_of("headless").namespace
    headless = plan_of("headless", overlay_of)
    assert headless.server_names() == [f"server.{ns}.svc.cluster.local"]
    assert headless.client_target(1) == f"dns://127.0.77.1:5353/server.{ns}.svc.cluster.local:50051"
    clusterip = plan_of("clusterip", overlay_of)
    assert clusterip.server_names() == [clusterip.endpoints_name]
    proxy = plan_of("proxy", overlay_of)
    assert proxy.target.name.startswith("proxy.")
    assert proxy.server_names() == [f"server.{overlay_of('proxy').namespace}.svc.cluster.local"]
    sidecar = plan_of("sidecar", overlay_of)
    assert sidecar.client_target(2) == "ipv4:127.0.77.42:15001"


def test_bounds_and_phase_lengths_come_from_the_settings(overlay_of):
    assert plan_of("maxage", overlay_of).bound == 10 * 1.1 + 5 + 2
    assert plan_of("proxy", overlay_of).bound == 5 + 2
    headless = plan_of("headless", overlay_of)
    assert headless.bound is None
    assert headless.after_s == Options().headless_after
    assert not headless.wait_steady
    fixed = plan_of("maxage", overlay_of, after=3.0)
    assert fixed.after_s == 3.0
    assert not fixed.wait_steady
    # a longer connection age moves the bound with it
    longer = plan_of("maxage", overlay_of, server_env={"MAX_CONNECTION_AGE": "20s"})
    assert longer.bound == 20 * 1.1 + 5 + 2


def test_environments_are_the_overlays_with_the_labs_changes(overlay_of):
    plan = plan_of("maxage", overlay_of, work_time="0", client_env={"CONCURRENCY": "1"})
    server = plan.server(4)
    assert server.name == "server-4"
    assert server.env["BIND_ADDRESS"] == server.address == "127.0.77.14"
    assert server.env["WORK_TIME"] == "0"
    assert server.env["MAX_CONNECTION_AGE"] == overlay_of("maxage").server_env["MAX_CONNECTION_AGE"]
    assert server.env["SCENARIO"] == "maxage"
    client = plan.client(2)
    assert client.env["POD_NAME"] == "client-2"
    assert client.env["CONCURRENCY"] == "1"
    assert client.env["SUMMARY_INTERVAL"] == Options().summary_interval
    assert client.env["LOG_FORMAT"] == "json"


def test_every_address_the_run_binds_is_listed_once(overlay_of):
    plan = plan_of("proxy", overlay_of)
    endpoints = plan.endpoints()
    assert len(endpoints) == len(set(endpoints))
    assert ("127.0.77.1", 5353, True) in endpoints
    assert ("127.0.77.15", 50051, False) in endpoints  # the fifth server, after the scale-up
    assert ("127.0.77.23", 9901, False) in endpoints  # the third proxy's admin
    envoy = plan.proxy(3)
    assert envoy.admin == ("127.0.77.23", 9901)


def test_phases_are_the_records_then_a_rollout_and_a_crash(overlay_of):
    proxy = plan_of("proxy", overlay_of).phases
    assert proxy == ("scale_proxies", "restart_client", "rollout", "crash")
    assert plan_of("clusterip", overlay_of).clients == 2
    assert plan_of("sidecar", overlay_of).clients == 1


def test_the_options_choose_among_the_phases(overlay_of):
    assert plan_of("proxy", overlay_of, phases=("rollout",)).phases == ("rollout",)
    assert plan_of("proxy", overlay_of, skip=("crash",)).phases[-1] == "rollout"
    # a phase the scenario lacks is left out, not added
    assert plan_of("headless", overlay_of, phases=("scale_proxies", "crash")).phases == ("crash",)
    assert plan_of("clusterip", overlay_of, phases=()).clients == 1


def test_an_unknown_phase_is_refused_with_the_known_ones(overlay_of):
    with pytest.raises(LabError, match=r"no phase 'drain'.*rollout, crash"):
        plan_of("headless", overlay_of, skip=("drain",))


def test_a_rollout_gives_its_new_servers_new_addresses(overlay_of):
    plan = plan_of("headless", overlay_of)
    endpoints = plan.endpoints()
    assert plan.servers_ever == 10
    assert ("127.0.77.19", 50051, False) in endpoints  # server-9
    assert ("127.0.77.110", 50051, False) in endpoints  # server-10: past .19, on from .110
    assert ("127.0.77.20", 50051, False) not in endpoints
    without = plan_of("headless", overlay_of, skip=("rollout",))
    assert without.servers_ever == 5
    assert ("127.0.77.16", 50051, False) not in without.endpoints()


def test_an_xds_target_gets_the_labs_control_plane_serving_the_services_endpoints(overlay_of):
    plan = plan_of("xds", overlay_of)
    ns = overlay_of("xds").namespace
    plane = plan.control_plane
    assert plane is not None
    # The listener wongnai/xds publishes for the server Service's port, from its Endpoints.
    assert plane.listener == f"server.{ns}:50051"
    assert plane.service == f"server.{ns}:50051=endpoints.server.{ns}.lab:50051"
    assert plan.server_names() == [plane.zone_name] == [plan.endpoints_name]
    # On the lab's control-plane address, on the port the overlay's bootstrap names.
    assert plane.address == ("127.0.77.2", 5000)
    assert plan.registry == "xDS"
    assert plan_of("headless", overlay_of).control_plane is None


def test_each_xds_client_gets_the_overlays_bootstrap_pointed_at_the_lab(overlay_of):
    plan = plan_of("xds", overlay_of)
    client = plan.client(2)
    assert client.env["SERVER_ADDRESS"] == overlay_of("xds").client_env["SERVER_ADDRESS"]
    assert client.env["GRPC_XDS_BOOTSTRAP"] == str(plan.bootstrap_path(2))
    assert plan.bootstrap_path(2).parent == plan.log_dir
    bootstrap = plan.control_plane.client_bootstrap("client-2")
    # What the client itself makes of it: the lab's control plane, and its own node id.
    env = {k: v for k, v in client.env.items() if k != "GRPC_XDS_BOOTSTRAP"}
    settings = ClientConfig.from_env({**env, "GRPC_XDS_BOOTSTRAP_CONFIG": json.dumps(bootstrap)})
    assert settings.xds.servers == ("127.0.77.2:5000",)
    assert settings.xds.node_id == "client-2"
    # Everything else is the overlay's.
    original = json.loads(overlay_of("xds").client_files["/etc/grpc-xds/bootstrap.json"])
    assert bootstrap["node"] == {**original["node"], "id": "client-2"}
    assert (
        bootstrap["xds_servers"][0]["channel_creds"] == original["xds_servers"][0]["channel_creds"]
    )


def test_the_xds_run_binds_the_control_plane_and_a_sixth_server(overlay_of):
    plan = plan_of("xds", overlay_of)
    endpoints = plan.endpoints()
    assert ("127.0.77.2", 5000, False) in endpoints
    # The restart phase adds one server while the control plane is down, and the rollout
    # replaces all six.
    assert plan.phases == ("restart_control_plane", "rollout", "crash")
    assert plan.servers_total == 6
    assert plan.servers_ever == 12
    assert ("127.0.77.16", 50051, False) in endpoints
    assert ("127.0.77.112", 50051, False) in endpoints
    assert plan_of("headless", overlay_of).servers_total == 5


def test_an_xds_client_without_a_bootstrap_the_overlay_mounts_is_refused(overlay_of):
    ov = overlay_of("xds")
    unmounted = replace(ov, client_files={})
    with pytest.raises(
        LabError, match=re.escape("GRPC_XDS_BOOTSTRAP=/etc/grpc-xds/bootstrap.json")
    ):
        timeline.plan(catalogue.get("xds"), Options(net=NET), unmounted)
    broken = replace(ov, client_files={"/etc/grpc-xds/bootstrap.json": '{"xds_servers": []}'})
    with pytest.raises(LabError, match="xds_servers"):
        timeline.plan(catalogue.get("xds"), Options(net=NET), broken)


def test_an_xds_listener_the_lab_does_not_serve_is_refused(overlay_of):
    ov = overlay_of("xds")
    elsewhere = replace(
        ov, client_env={**ov.client_env, "SERVER_ADDRESS": "xds:///server.other:50051"}
    )
    with pytest.raises(LabError, match=re.escape("server.other:50051")):
        timeline.plan(catalogue.get("xds"), Options(net=NET), elsewhere)


def test_a_cluster_only_scenario_is_refused_with_its_reason(overlay_of):
    with pytest.raises(LabError, match="linkerd needs a Kubernetes cluster"):
        timeline.plan(catalogue.get("linkerd"), Options(net=NET), overlay_of("linkerd"))


def test_scaling_to_no_more_servers_is_refused(overlay_of):
    with pytest.raises(LabError, match="--scale-to must exceed"):
        plan_of("headless", overlay_of, scale_to=3)


# -- adding a scenario: one record, one overlay ---------------------------------------------

#: A scenario nobody ships: headless with a short connection age, and a client restart.
QUICKAGE = Scenario(
    name="quickage",
    balancing="headless, with a 2 s maximum connection age",
    shows="new servers within seconds",
    hops=0,
    reach=Reach.BOUNDED,
    bound=Bound.MAX_AGE,
    rollout="no call fails",
    crash="no call fails",
    checks=(catalogue.NEW_SERVER_REACHED,),
    streams=catalogue.get("maxage").streams,
    phases=(Phase("restart_client"),),
)

QUICKAGE_OVERLAY = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: grpc-lb-quickage
resources:
  - ../../base
components:
  - ../../components/headless
  - ../../components/maxage
  - ../../components/scenario
labels:
  - pairs:
      grpc-lb-lab/scenario: quickage
    includeTemplates: true
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: server}
      spec:
        template:
          spec:
            containers:
              - name: server
                env:
                  - {name: MAX_CONNECTION_AGE, value: 2s}
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: client}
      spec:
        template:
          spec:
            containers:
              - name: client
                env:
                  - {name: DNS_MIN_TIME_BETWEEN_RESOLUTIONS, value: 500ms}
"""


@pytest.fixture
def k8s_with_quickage(tmp_path, k8s_dir):
    copy = tmp_path / "k8s"
    shutil.copytree(k8s_dir, copy)
    (copy / "overlays" / "quickage").mkdir()
    (copy / "overlays" / "quickage" / "kustomization.yaml").write_text(QUICKAGE_OVERLAY)
    return copy


def test_a_new_scenario_is_planned_from_its_record_and_overlay(k8s_with_quickage):
    plan = timeline.plan(QUICKAGE, Options(net=NET, k8s_dir=k8s_with_quickage))
    assert plan.server_env["SCENARIO"] == "quickage"
    assert plan.server_env["MAX_CONNECTION_AGE"] == "2s"
    assert plan.bound == round(2 * 1.1 + 0.5 + 2, 3)
    assert plan.target.name == "server.grpc-lb-quickage.svc.cluster.local"
    assert plan.phases == ("restart_client", "rollout", "crash")
    assert plan.clients == 2


@pytest.mark.slow
def test_a_new_scenario_runs_and_is_judged_by_its_own_checks(tmp_path, k8s_with_quickage, lab_net):
    options = Options(
        warmup=2,
        steady=1,
        restart=2,
        net=Net(lab_net(79)),
        k8s_dir=k8s_with_quickage,
        log_dir=tmp_path / "logs",
        skip=("rollout", "crash"),
    )
    result = timeline.run(QUICKAGE, options)
    # the checks of the phases left out are skipped, not failed
    skipped = {rollout.LOSSLESS, rollout.ALL_ANSWER, crash.LOSSLESS}
    assert [c.name for c in result.checks] == [
        c for c in judging.check_names(QUICKAGE) if c not in skipped
    ]
    assert result.ok, f"{result.checks}\nlogs: {result.log_dir}"
    assert set(result.verdict.servers_by_client) == {"client-1", "client-2"}


def test_a_phase_the_timeline_lacks_is_refused_before_anything_starts(tmp_path, k8s_with_quickage):
    broken = replace(QUICKAGE, phases=(Phase("drain_a_node"),))
    options = Options(net=NET, k8s_dir=k8s_with_quickage, log_dir=tmp_path / "logs")
    with pytest.raises(LabError, match="no phase 'drain_a_node'"):
        timeline.run(broken, options)
    assert not list((tmp_path / "logs").glob("*.log"))


def test_stream_mode_sets_the_clients_mode_and_waits_for_maxages_cut(overlay_of):
    plan = plan_of("maxage", overlay_of, client_mode="streams")
    assert plan.client(1).env["CLIENT_MODE"] == "streams"
    assert plan.streams
    assert plan.stream_slots == ClientConfig.from_env(plan.client_env).concurrency
    # 10 s x 1.1 + 5 s of grace + the lab's 2 s: the phase after the scale-up lasts that long
    assert plan.stream_cut_s == (12.0, 18.0)
    assert plan.after_s >= plan.stream_cut_s[1]


def test_unary_runs_have_no_stream_figures(overlay_of):
    plan = plan_of("maxage", overlay_of)
    assert not plan.streams
    assert plan.stream_cut_s is None


def test_an_unknown_client_mode_is_refused(overlay_of):
    with pytest.raises(LabError, match="--client-mode must be one of rounds, closed_loop"):
        plan_of("headless", overlay_of, client_mode="bursts")
