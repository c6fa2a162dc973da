"""Real Envoy as an ADS client of the lab xDS control plane.

Envoy takes its clusters by CDS and their endpoints by EDS, wildcard-subscribed over one ADS
stream, and its routes by RDS; a hello_client calls through it. When a cluster changes, Envoy
builds a new one and subscribes it to the same endpoints with the nonce it has already ACKed:
the control plane must answer that request again, or the new cluster stays warming.
"""

from __future__ import annotations

import re
import time

import pytest
from hello_client import events as client_events
from hellolb_lab import envoy, launchers, polling, procs
from hellolb_lab.dns import Zone
from hellolb_lab.procs import Supervisor, free_port
from hellolb_lab.xds import launch, stream

pytestmark = pytest.mark.slow

NAME = "server.lab"
LISTENER = f"{NAME}:50051"
#: The test's block within the session's own 127.X (see conftest.lab_net).
BLOCK = 128
WAIT_S = 20.0


def stat(admin, name: str) -> int | None:
    """A counter or gauge from Envoy's admin interface (None if Envoy has no such stat)."""
    return envoy.counters(admin, re.escape(name)).get(name)


@pytest.fixture
def prefix(lab_net):
    return lab_net(BLOCK)


@pytest.fixture
def envoy_lab(tmp_path, prefix, envoy_bootstrap):
    binary = procs.find_binary("envoy")
    zone = Zone(tmp_path / "zone.json")
    policy_file = tmp_path / "lb-policy"
    policy_file.write_text("round_robin\n")
    xds = (f"{prefix}.1", free_port(f"{prefix}.1"))
    listen = (f"{prefix}.5", free_port(f"{prefix}.5"))
    admin = (f"{prefix}.5", free_port(f"{prefix}.5"))
    config = envoy_bootstrap(
        node_id="envoy-1", xds=xds, listen=listen, admin=admin, route_name=LISTENER
    )
    path = envoy.write(config, tmp_path / "envoy.yaml")
    envoy.validate(binary, path)
    with Supervisor(tmp_path / "logs") as sup:
        servers = [
            (f"s{i}", launch.server_env(f"s{i}", f"{prefix}.{10 + i}", 50051, WORK_TIME="2ms"))
            for i in (1, 2, 3)
        ]
        launchers.start_servers(sup, servers, WAIT_S)
        zone.publish(NAME, [f"{prefix}.11", f"{prefix}.12"])
        argv = launch.control_plane_argv(
            xds, zone.path, [f"{LISTENER}={NAME}"], lb_policy_file=policy_file
        )
        plane = launchers.start_control_plane(sup, "xds", argv, WAIT_S)
        proxy = sup.start("envoy", envoy.argv(binary, path, ["--log-level", "warn"]))
        envoy.wait_ready(admin, WAIT_S, alive=proxy.running)
        env = {
            "SERVER_ADDRESS": f"ipv4:{listen[0]}:{listen[1]}",
            "CLIENT_ID": "c1",
            "CONCURRENCY": "3",
            "ROUND_INTERVAL": "10ms",
            "SUMMARY_INTERVAL": "500ms",
            "LOG_FORMAT": "json",
        }
        client = launchers.start_client(sup, "c1", env)
        yield sup, zone, policy_file, plane, admin, client


def wait_answers(client, servers, since=0.0, count=1):
    polling.wait_until(
        lambda: all(len(launch.answers(client, s, since)) >= count for s in servers),
        WAIT_S,
        f"answers from {servers} through Envoy",
    )


def test_envoy_routes_to_the_eds_endpoints_and_follows_a_push(envoy_lab, prefix):
    sup, zone, _, plane, _, client = envoy_lab
    wait_answers(client, ["s1", "s2"])
    assert not launch.answers(client, "s3")
    # Envoy asks for every cluster (wildcard CDS) and for the route named in its listener.
    (cds,) = launch.events(plane, stream.REQUEST, node="envoy-1", type="CDS", kind="initial")
    assert cds["resource_names"] == []
    rds = launch.events(plane, stream.REQUEST, node="envoy-1", type="RDS", kind="initial")
    assert rds[0]["resource_names"] == [LISTENER]
    published = time.time()
    zone.publish(NAME, [f"{prefix}.11", f"{prefix}.12", f"{prefix}.13"])
    wait_answers(client, ["s1", "s2", "s3"], since=published, count=5)
    assert sup.stop(client) == 0
    (summary,) = launch.events(client, client_events.SUMMARY, final=True)
    assert summary["errors_total_count"] == 0


def test_a_changed_cluster_is_warmed_by_answering_envoys_re_request(envoy_lab, prefix):
    sup, _, policy_file, plane, admin, client = envoy_lab
    wait_answers(client, ["s1", "s2"])
    (eds_ack,) = launch.events(plane, stream.ACK, node="envoy-1", type="EDS")
    modified = stat(admin, "cluster_manager.cluster_modified")
    changed = time.time()
    policy_file.write_text("least_request\n")
    again = plane.wait_event(
        lambda e: e.get("event") == stream.REQUEST and e.get("kind") == stream.RE_REQUEST,
        WAIT_S,
    )
    # The new cluster's subscription: same names, same version, the nonce already ACKed.
    assert again["type"] == "EDS"
    assert again["response_nonce"] == eds_ack["response_nonce"]
    assert again["version_info"] == eds_ack["version"]
    assert again["resource_names"] == [LISTENER]
    polling.wait_until(
        lambda: (
            stat(admin, "cluster_manager.cluster_modified") > modified
            and stat(admin, "cluster_manager.warming_clusters") == 0
        ),
        WAIT_S,
        "the modified cluster to finish warming",
    )
    (answer,) = launch.events(plane, stream.PUSH, node="envoy-1", reason=stream.RE_REQUEST)
    assert answer["endpoints"] == {LISTENER: [f"{prefix}.11:50051", f"{prefix}.12:50051"]}
    wait_answers(client, ["s1", "s2"], since=time.time(), count=20)
    assert sup.stop(client) == 0
    (summary,) = launch.events(client, client_events.SUMMARY, final=True)
    assert summary["errors_total_count"] == 0
    assert launch.answers(client, since=changed)
