"""The canary in the lab: the xDS control plane sends a route whose weighted clusters split the
calls between stable and canary servers, and a changed weight reaches the client by RDS alone.

Real Envoy takes the route from the lab's control plane over ADS and a hello_client calls
through it; or the hello_client's own gRPC takes the route (proxyless, an ``xds:`` target). The
weight steps 0, 10, 50 and 100 percent, then the rollback to 0, are written to the control
plane's weight file. Each step is judged on the calls the client sent after Envoy (or the
client's gRPC) ACKed the new route: the canary's share within
:func:`hellolb_lab.canary.tolerance` of the weight (no stray call at 0 and 100), no failed call,
and the new weight applied (the ACK) within a bound. The unit tests below check the route the
control plane builds and the weight files it refuses.
"""

from __future__ import annotations

import time

import pytest
from hello_client import events as client_events
from hellolb_lab import canary, clientlog, envoy, launchers, polling, procs
from hellolb_lab.dns import Zone
from hellolb_lab.procs import Supervisor, free_port
from hellolb_lab.xds import launch, resources, server, stream
from hellolb_lab.xds.server import ControlPlane

STABLE = "server.lab"
CANARY = "canary.lab"
LISTENER = f"{STABLE}:50051"
CANARY_LISTENER = f"{CANARY}:50051"
#: The test's block within the session's own 127.X (see conftest.lab_net).
BLOCK = 133
WAIT_S = 20.0
#: Answers counted per step: enough for a 4-sigma tolerance of 6 points at 10%.
ANSWERS_PER_STEP = 400
#: Seconds from writing the weight file to the client's ACK of the new route, and to its last
#: call under the old one: the file watcher notices at once (inotify) or at its safety poll
#: (1 s), the push takes milliseconds.
APPLY_BOUND_S = 3.0
#: Seconds after the ACK before a step's calls are counted. An ACK says the client holds the
#: new route, not that every call already uses it: Envoy's workers and gRPC's channel switch
#: to it a moment later (measured below, and judged by the steps to 0 and 100).
SETTLE_S = 0.5


# -- the route and the weight file, without processes


def service(listener: str, name: str) -> resources.Service:
    return resources.parse_service(f"{listener}={name}")


def test_a_split_route_weights_the_own_and_the_canary_cluster():
    services = [service(LISTENER, STABLE), service(CANARY_LISTENER, CANARY)]
    split = resources.Split(LISTENER, CANARY_LISTENER, 10)
    catalog = resources.Catalog.build(services, {}, splits=[split])
    route = catalog.find(resources.ROUTE, LISTENER)
    (host,) = route.virtual_hosts
    (only,) = host.routes
    weighted = [(c.name, c.weight.value) for c in only.route.weighted_clusters.clusters]
    assert weighted == [(LISTENER, 90), (CANARY_LISTENER, 10)]
    # The canary's own route is not split.
    assert catalog.find(resources.ROUTE, CANARY_LISTENER).virtual_hosts[0].routes[0].route.cluster


def test_a_split_names_clusters_in_the_requests_authority():
    services = [service(LISTENER, STABLE), service(CANARY_LISTENER, CANARY)]
    catalog = resources.Catalog.build(
        services, {}, splits=[resources.Split(LISTENER, CANARY_LISTENER, 50)]
    )
    name = resources.resource_name(resources.ROUTE, "lab", LISTENER)
    clusters = catalog.find(resources.ROUTE, name).virtual_hosts[0].routes[0].route
    assert [c.name for c in clusters.weighted_clusters.clusters] == [
        resources.resource_name(resources.CLUSTER, "lab", LISTENER),
        resources.resource_name(resources.CLUSTER, "lab", CANARY_LISTENER),
    ]


@pytest.mark.parametrize("text", ["x", "server.lab:50051", "a:1=", "=b:2", "a:1=a:1"])
def test_a_bad_split_is_refused(text):
    with pytest.raises(ValueError, match="LISTENER=CANARY_LISTENER"):
        resources.parse_split(text)


def plane_with_weight(tmp_path, text: str | None) -> tuple[ControlPlane, list[dict]]:
    logged: list[dict] = []
    weight_file = tmp_path / "canary-weight"
    if text is not None:
        weight_file.write_text(text)
    plane = ControlPlane(
        Zone(tmp_path / "zone.json"),
        [service(LISTENER, STABLE), service(CANARY_LISTENER, CANARY)],
        "round_robin",
        logged.append,
        splits=[(LISTENER, CANARY_LISTENER)],
        weight_file=weight_file,
    )
    (tmp_path / "zone.json").write_text("{}")
    plane.reload()
    return plane, logged


def weights(plane: ControlPlane) -> list[int]:
    route = plane.catalog.find(resources.ROUTE, LISTENER).virtual_hosts[0].routes[0].route
    return [c.weight.value for c in route.weighted_clusters.clusters]


def test_the_weight_file_sets_the_canarys_percent(tmp_path):
    plane, logged = plane_with_weight(tmp_path, "25\n")
    assert weights(plane) == [75, 25]
    assert [e for e in logged if e["event"] == stream.WEIGHT] == [
        {"event": stream.WEIGHT, "canary_percent": 25, "was": 0}
    ]


def test_without_a_weight_file_every_call_stays_on_the_stable_servers(tmp_path):
    plane, _ = plane_with_weight(tmp_path, None)
    assert weights(plane) == [100, 0]


@pytest.mark.parametrize("bad", ["101", "-1", "ten", "5.5", ""])
def test_a_bad_weight_is_logged_and_the_current_one_kept(tmp_path, bad):
    plane, logged = plane_with_weight(tmp_path, "10")
    (tmp_path / "canary-weight").write_text(bad)
    plane.reload()
    assert weights(plane) == [90, 10]
    (invalid,) = [e for e in logged if e["event"] == stream.WEIGHT_INVALID]
    assert invalid["value"] == bad
    assert invalid["kept"] == 10
    assert "0 to 100" in invalid["expected"]


# -- real Envoy, real servers, the steps


CLIENT_ENV = {
    "CONCURRENCY": "10",
    "ROUND_INTERVAL": "0s",
    "SUMMARY_INTERVAL": "500ms",
    "LOG_FORMAT": "json",
}


@pytest.fixture(params=["envoy", "proxyless"])
def canary_lab(request, tmp_path, lab_net, envoy_bootstrap):
    """Servers, the control plane, and a client calling through Envoy or, proxyless, taking
    the route itself; yields them and the xDS node whose ACKs tell a route applied."""
    prefix = lab_net(BLOCK)
    zone = Zone(tmp_path / "zone.json")
    weight_file = tmp_path / "canary-weight"
    weight_file.write_text("0\n")
    xds = (f"{prefix}.1", free_port(f"{prefix}.1"))
    with Supervisor(tmp_path / "logs") as sup:
        ids = {"server-1": 11, "server-2": 12, "server-canary-1": 21}
        servers = [
            (sid, launch.server_env(sid, f"{prefix}.{n}", 50051, WORK_TIME="2ms"))
            for sid, n in ids.items()
        ]
        launchers.start_servers(sup, servers, WAIT_S)
        zone.publish(STABLE, [f"{prefix}.11", f"{prefix}.12"])
        zone.publish(CANARY, [f"{prefix}.21"])
        argv = launch.control_plane_argv(
            xds,
            zone.path,
            [f"{LISTENER}={STABLE}", f"{CANARY_LISTENER}={CANARY}"],
            splits=[f"{LISTENER}={CANARY_LISTENER}"],
            weight_file=weight_file,
        )
        plane = launchers.start_control_plane(sup, "xds", argv, WAIT_S)
        if request.param == "proxyless":
            env = launch.client_env(f"xds:///{LISTENER}", xds, "c1", **CLIENT_ENV)
            yield sup, weight_file, plane, launchers.start_client(sup, "c1", env), "c1"
            return
        listen = (f"{prefix}.5", free_port(f"{prefix}.5"))
        admin = (f"{prefix}.5", free_port(f"{prefix}.5"))
        config = envoy_bootstrap(
            node_id="envoy-1", xds=xds, listen=listen, admin=admin, route_name=LISTENER
        )
        binary = procs.find_binary("envoy")
        path = envoy.write(config, tmp_path / "envoy.yaml")
        envoy.validate(binary, path)
        proxy = sup.start("envoy", envoy.argv(binary, path, ["--log-level", "warn"]))
        envoy.wait_ready(admin, WAIT_S, alive=proxy.running)
        env = {"SERVER_ADDRESS": f"ipv4:{listen[0]}:{listen[1]}", "CLIENT_ID": "c1", **CLIENT_ENV}
        yield sup, weight_file, plane, launchers.start_client(sup, "c1", env), "envoy-1"


def rds_acks(plane, node: str) -> list[dict]:
    return launch.events(plane, stream.ACK, node=node, type="RDS")


def sent_after(client, t: float) -> list[clientlog.Answer]:
    """The client's answers to calls it sent after ``t``, each at its sending time (answer time
    minus latency), oldest first."""
    out = []
    for e in client.snapshot():
        if clientlog.is_response(e):
            end = clientlog.parse_timestamp(e[client_events.TIMESTAMP])
            sent = end - float(e.get(client_events.LATENCY_MS) or 0.0) / 1000
            if sent > t:
                out.append(clientlog.Answer(sent, str(e[client_events.SERVER_ID])))
    return sorted(out, key=lambda a: a.t)


def shift(weight_file, plane, node: str, percent: int) -> tuple[float, float]:
    """Write the weight; wait for the node's ACK of a new route. (written, acked) times."""
    before = len(rds_acks(plane, node))
    written = time.time()
    weight_file.write_text(f"{percent}\n")
    polling.wait_until(
        lambda: len(rds_acks(plane, node)) > before, WAIT_S, f"{node}'s ACK of the route"
    )
    return written, float(rds_acks(plane, node)[before]["timestamp"])


@pytest.mark.slow
def test_each_weight_step_and_the_rollback_hold_without_a_failed_call(canary_lab):
    sup, weight_file, plane, client, node = canary_lab
    polling.wait_until(
        lambda: len(sent_after(client, 0.0)) >= ANSWERS_PER_STEP, WAIT_S, "answers at 0%"
    )
    assert not [a for a in sent_after(client, 0.0) if canary.is_canary(a.server_id)]
    applied: list[float] = []
    took_effect: list[float] = []
    for percent in (10, 50, 100, canary.ROLLBACK):
        written, acked = shift(weight_file, plane, node, percent)
        applied.append(acked - written)
        start = acked + SETTLE_S
        polling.wait_until(
            lambda start=start: len(sent_after(client, start)) >= ANSWERS_PER_STEP,
            WAIT_S,
            f"{ANSWERS_PER_STEP} answers at {percent}%",
        )
        answers = sent_after(client, start)[:ANSWERS_PER_STEP]
        step = canary.Step(percent, written, start, answers[-1].t)
        split = canary.split(step, answers)
        assert split.ok, split.text()
        if percent in (0, 100):
            # The last call that still went the old way: 100% leaves the stable servers, 0%
            # the canary.
            old = [
                a.t
                for a in sent_after(client, written)
                if canary.is_canary(a.server_id) == (percent == 0)
            ]
            took_effect.append((max(old) if old else written) - written)
    assert max(applied) < APPLY_BOUND_S, applied
    assert max(took_effect) < APPLY_BOUND_S, took_effect
    assert not launch.events(plane, stream.NACK)
    assert sup.stop(client) == 0
    (summary,) = launch.events(client, client_events.SUMMARY, final=True)
    assert summary["errors_total_count"] == 0


def test_a_split_of_a_listener_not_served_is_refused_at_start(tmp_path, capsys):
    argv = ["--listen", "127.0.0.1:1", "--zone", str(tmp_path / "zone.json")]
    argv += ["--service", f"{LISTENER}={STABLE}", "--split", f"{LISTENER}={CANARY_LISTENER}"]
    with pytest.raises(SystemExit) as stopped:
        server._parse_args(argv)
    assert stopped.value.code == 2
    assert "both must be --service listeners" in capsys.readouterr().err
