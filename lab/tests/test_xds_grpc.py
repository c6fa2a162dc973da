"""The lab xDS control plane driving the real gRPC client (hello_client, grpcio 1.85).

Real processes on loopback: the control plane, hello_server processes and hello_client with an
``xds:`` target whose bootstrap points at the control plane. Each test has its own
``127.X.12x.0/24`` block, apart from the lab tests' blocks and, like them, in the test session's
own ``127.X`` (``lab_net``), so that two test runs on one machine do not collide; every wait is
a poll with a deadline
and every process is stopped by its PID when the test ends.
"""

from __future__ import annotations

import socket
import time
from collections import Counter

import pytest
from hello_client import events as client_events
from hellolb_lab import clientlog, launchers, polling, procs
from hellolb_lab.dns import Zone
from hellolb_lab.procs import Supervisor
from hellolb_lab.xds import launch, stream

pytestmark = pytest.mark.slow

NAME = "server.lab"
LISTENER = f"{NAME}:50051"
PORT = 50051
#: Publishing to first answer, asserted loosely: pushes take milliseconds, a busy shared
#: machine may add tenths; a DNS client would wait for a reconnection (30 s floor by default).
NEW_SERVER_BOUND_S = 2.0
#: Start-up, reconnection and run waits: far above what they take, so load cannot fail them.
WAIT_S = 20.0
CLIENT_ENV = {
    "CONCURRENCY": "3",
    "ROUND_INTERVAL": "10ms",
    "SUMMARY_INTERVAL": "500ms",
    "RPC_TIMEOUT": "2s",
    "STARTUP_TIMEOUT": "20s",
}


class XdsLab:
    """One test's control plane, servers and clients in the block ``<prefix>.0/24``."""

    def __init__(self, sup: Supervisor, tmp_path, prefix: str) -> None:
        self.sup = sup
        self.prefix = prefix
        self.zone = Zone(tmp_path / "zone.json")
        self.policy_file = tmp_path / "lb-policy"
        host = f"{self.prefix}.1"
        with socket.socket() as sock:
            sock.bind((host, 0))
            self.xds = (host, sock.getsockname()[1])
        self.servers: dict[str, procs.Proc] = {}

    def ip(self, i: int) -> str:
        return f"{self.prefix}.{10 + i}"

    def plane(self, name: str = "xds", policy: str | None = None) -> procs.Proc:
        argv = launch.control_plane_argv(
            self.xds,
            self.zone.path,
            [f"{LISTENER}={NAME}"],
            lb_policy=policy,
            lb_policy_file=self.policy_file,
        )
        return launchers.start_control_plane(self.sup, name, argv, WAIT_S)

    def start_servers(self, *numbers: int, work_time: str = "2ms") -> None:
        env = {"WORK_TIME": work_time, "SHUTDOWN_GRACE": "3s"}
        servers = [(f"s{i}", launch.server_env(f"s{i}", self.ip(i), PORT, **env)) for i in numbers]
        started = launchers.start_servers(self.sup, servers, WAIT_S)
        self.servers.update((name, proc) for (name, _), proc in zip(servers, started, strict=True))

    def publish(self, *numbers: int) -> float:
        """Publish exactly these servers; the time of the write."""
        at = time.time()
        self.zone.publish(NAME, [self.ip(i) for i in numbers])
        return at

    def client(self, client_id: str, target: str = f"xds:///{LISTENER}", **env: str):
        full = launch.client_env(target, self.xds, client_id, **{**CLIENT_ENV, **env})
        return launchers.start_client(self.sup, client_id, full)


@pytest.fixture
def xds_lab(tmp_path, lab_net):
    """``xds_lab(block)``: an :class:`XdsLab` in the session's ``lab_net(block)``, stopped at
    the end."""
    with Supervisor(tmp_path / "logs", stop_grace=5.0) as sup:
        yield lambda block: XdsLab(sup, tmp_path, lab_net(block))


def wait_answers(client, servers, since=0.0, count=1, timeout=WAIT_S):
    """Poll until ``client`` has ``count`` answers from each of ``servers`` since ``since``."""
    polling.wait_until(
        lambda: all(len(launch.answers(client, s, since)) >= count for s in servers),
        timeout,
        f"{client.name} answered by {servers}",
    )


def final_summary(lab, client):
    assert lab.sup.stop(client) == 0
    (summary,) = launch.events(client, client_events.SUMMARY, final=True)
    return summary


def acked(plane, node, type_name, version):
    return bool(launch.events(plane, stream.ACK, node=node, type=type_name, version=version))


def eds_push_with(plane, node, ips):
    """The EDS push to ``node`` whose endpoints are exactly ``ips`` (port 50051)."""
    want = sorted(f"{ip}:{PORT}" for ip in ips)
    for event in launch.events(plane, stream.PUSH, node=node, type="EDS"):
        if sorted(event["endpoints"].get(LISTENER, [])) == want:
            return event
    return None


def counts_since(client, since):
    return Counter(
        e[client_events.SERVER_ID]
        for e in client.snapshot()
        if clientlog.is_response(e)
        and clientlog.parse_timestamp(e[client_events.TIMESTAMP]) >= since
    )


def test_calls_spread_over_published_servers_and_a_new_one_answers_within_the_bound(xds_lab):
    lab = xds_lab(120)
    plane = lab.plane()
    lab.start_servers(1, 2, 3)
    lab.publish(1, 2)
    client = lab.client("c1")
    wait_answers(client, ["s1", "s2"])
    assert "s3" not in counts_since(client, 0), "s3 serves but is not published yet"
    published = lab.publish(1, 2, 3)
    wait_answers(client, ["s3"], since=published)
    delay = launch.first_answer(client, "s3", published) - published
    assert delay < NEW_SERVER_BOUND_S, f"s3 answered {delay:.3f}s after it was published"
    three = [lab.ip(1), lab.ip(2), lab.ip(3)]
    polling.wait_until(
        lambda: (
            (p := eds_push_with(plane, "c1", three)) is not None
            and acked(plane, "c1", "EDS", p["version"])
        ),
        WAIT_S,
        "the client's ACK of the EDS update with s3",
    )
    assert eds_push_with(plane, "c1", three)["reason"] == stream.UPDATE
    wait_answers(client, ["s1", "s2", "s3"], since=published, count=30)
    assert final_summary(lab, client)["errors_total_count"] == 0
    # Types were asked for in the order gRPC follows the chain: LDS, RDS, CDS, EDS.
    first_requests = [e["type"] for e in launch.events(plane, stream.REQUEST, kind="initial")]
    assert first_requests == ["LDS", "RDS", "CDS", "EDS"]


def test_a_server_withdrawn_from_eds_before_sigterm_costs_no_call(xds_lab):
    lab = xds_lab(121)
    plane = lab.plane()
    lab.start_servers(1, 2, 3, work_time="20ms")
    lab.publish(1, 2, 3)
    client = lab.client("c1", CONCURRENCY="6")
    wait_answers(client, ["s1", "s2", "s3"], count=10)
    withdrawn = lab.publish(1, 2)
    polling.wait_until(
        lambda: (
            (p := eds_push_with(plane, "c1", [lab.ip(1), lab.ip(2)])) is not None
            and acked(plane, "c1", "EDS", p["version"])
        ),
        WAIT_S,
        "the client's ACK of the EDS update without s3",
    )
    # Calls already running on s3 finish during its drain; no new one goes there.
    assert lab.sup.stop(lab.servers["s3"]) == 0
    wait_answers(client, ["s1", "s2"], since=time.time(), count=20)
    summary = final_summary(lab, client)
    assert summary["errors_total_count"] == 0
    assert summary["by_server_total"]["s3"] > 0
    assert launch.first_answer(client, "s1", withdrawn) is not None


def test_the_client_keeps_calling_while_the_control_plane_is_down_and_finds_new_servers_after(
    xds_lab,
):
    lab = xds_lab(122)
    plane = lab.plane("xds-1")
    lab.start_servers(1, 2, 3)
    lab.publish(1, 2)
    client = lab.client("c1")
    wait_answers(client, ["s1", "s2"])
    (lds,) = launch.events(plane, stream.ACK, node="c1", type="LDS")
    assert lab.sup.stop(plane) == 0
    down = time.time()
    # Calls go on to the servers the client knows, with no control plane at all.
    wait_answers(client, ["s1", "s2"], since=down, count=30)
    published = lab.publish(1, 2, 3)
    assert launch.first_answer(client, "s3", published) is None
    again = lab.plane("xds-2")
    up = time.time()
    wait_answers(client, ["s3"], since=up)
    # The client came back with the versions it had, and was answered all the same.
    (hello,) = launch.events(again, stream.REQUEST, node="c1", type="LDS", kind=stream.INITIAL)
    assert hello["version_info"] == lds["version"]
    assert final_summary(lab, client)["errors_total_count"] == 0


def test_many_clients_at_once_each_get_the_push(xds_lab):
    lab = xds_lab(123)
    plane = lab.plane()
    lab.start_servers(1, 2, 3)
    lab.publish(1, 2)
    ids = [f"c{n}" for n in range(1, 5)]
    clients = [lab.client(c, CONCURRENCY="2", ROUND_INTERVAL="20ms") for c in ids]
    for client in clients:
        wait_answers(client, ["s1", "s2"])
    published = lab.publish(1, 2, 3)
    for client in clients:
        wait_answers(client, ["s3"], since=published)
    delays = [launch.first_answer(c, "s3", published) - published for c in clients]
    assert max(delays) < NEW_SERVER_BOUND_S, delays
    streams = {e["node"]: e["stream"] for e in launch.events(plane, stream.PUSH, type="EDS")}
    assert sorted(streams) == ids
    assert len(set(streams.values())) == len(ids), "one ADS stream per client"
    for client in clients:
        assert final_summary(lab, client)["errors_total_count"] == 0


def test_a_policy_rejected_in_an_update_keeps_the_last_good_one(xds_lab):
    lab = xds_lab(124)
    plane = lab.plane()
    lab.start_servers(1, 2, 3)
    lab.publish(1, 2)
    client = lab.client("c1")
    wait_answers(client, ["s1", "s2"])
    (good,) = launch.events(plane, stream.ACK, node="c1", type="CDS")
    lab.policy_file.write_text("least_request\n")
    nack = plane.wait_event(lambda e: e.get("event") == stream.NACK, WAIT_S)
    assert (nack["node"], nack["type"], nack["kept_version"]) == ("c1", "CDS", good["version"])
    assert "load_balancing_policy" in nack["reason"]
    rejected = time.time()
    wait_answers(client, ["s1", "s2"], since=rejected, count=20)
    published = lab.publish(1, 2, 3)
    wait_answers(client, ["s3"], since=published)
    assert final_summary(lab, client)["errors_total_count"] == 0


def test_an_xds_target_with_an_authority_is_served_under_xdstp_names(xds_lab):
    lab = xds_lab(125)
    plane = lab.plane()
    lab.start_servers(1)
    lab.publish(1)
    client = lab.client("c1", target=f"xds://lab.example/{LISTENER}")
    wait_answers(client, ["s1"], count=10)
    asked = {e["type"]: e["resource_names"] for e in launch.events(plane, stream.REQUEST)}
    assert asked["LDS"] == [f"xdstp://lab.example/envoy.config.listener.v3.Listener/{LISTENER}"]
    assert asked["EDS"] == [
        f"xdstp://lab.example/envoy.config.endpoint.v3.ClusterLoadAssignment/{LISTENER}"
    ]
    assert final_summary(lab, client)["errors_total_count"] == 0


#: What gRPC 1.85 does with each policy a Cluster can name.
ACCEPTED = ("round_robin", "ring_hash", "weighted_round_robin", "pick_first", "wrr_locality")
REJECTED = ("least_request", "random", "maglev")


def plane_per_policy(lab, names):
    """One control plane per policy (all at once, sharing the zone); client id ``c-<policy>``."""
    planes = {}
    for name in names:
        with socket.socket() as sock:
            sock.bind((lab.xds[0], 0))
            port = sock.getsockname()[1]
        argv = launch.control_plane_argv(
            (lab.xds[0], port), lab.zone.path, [f"{LISTENER}={NAME}"], lb_policy=name
        )
        planes[name] = ((lab.xds[0], port), lab.sup.start(f"xds-{name}", argv))
    for _, proc in planes.values():
        launchers.wait_ready(proc, stream.STARTED, WAIT_S)
    return planes


def test_grpc_accepts_these_policies_through_cds(xds_lab):
    lab = xds_lab(126)
    lab.start_servers(1, 2, 3)
    lab.publish(1, 2, 3)
    planes = plane_per_policy(lab, ACCEPTED)
    clients = {}
    for name, (address, _) in planes.items():
        env = launch.client_env(
            f"xds:///{LISTENER}", address, f"c-{name}", **{**CLIENT_ENV, "MAX_ROUNDS": "20"}
        )
        clients[name] = launchers.start_client(lab.sup, f"c-{name}", env)
    for name, client in clients.items():
        summary = client.wait_event(
            lambda e: e.get("event") == client_events.SUMMARY and e[client_events.FINAL], WAIT_S
        )
        assert client.popen.wait(WAIT_S) == 0, name
        assert summary["errors_total_count"] == 0, name
        servers = set(summary["by_server_total"])
        expected = 1 if name == "pick_first" else 3
        assert len(servers) == expected, (name, servers)
        plane = planes[name][1]
        assert launch.events(plane, stream.ACK, node=f"c-{name}", type="CDS"), name
        assert not launch.events(plane, stream.NACK), name


def test_grpc_rejects_these_policies_and_its_calls_fail_unavailable(xds_lab):
    lab = xds_lab(127)
    lab.start_servers(1)
    lab.publish(1)
    planes = plane_per_policy(lab, REJECTED)
    clients = {
        name: launchers.start_client(
            lab.sup,
            f"c-{name}",
            launch.client_env(f"xds:///{LISTENER}", address, f"c-{name}", **CLIENT_ENV),
        )
        for name, (address, _) in planes.items()
    }
    for name, client in clients.items():
        waiting = launchers.wait_ready(client, client_events.WAITING, WAIT_S)
        assert waiting["error"].startswith("UNAVAILABLE: CDS resource"), waiting
        assert "load_balancing_policy" in waiting["error"]
        plane = planes[name][1]
        nack = plane.wait_event(lambda e: e.get("event") == stream.NACK, WAIT_S)
        assert (nack["node"], nack["type"], nack["kept_version"]) == (f"c-{name}", "CDS", "")
        assert "no supported load balancing policy" in nack["reason"]
        assert not launch.events(plane, stream.REQUEST, type="EDS"), "no cluster, no endpoints"
        assert launch.answers(client) == []
